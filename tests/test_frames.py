"""What every frame kvmtrace returns looks like: time columns named ``*_ns`` (the events' own
``ts`` aside), missing values NA (never −1), text either categorical or the one string dtype, and
frames without rows still typed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kvmtrace
from kvmtrace.schema import STRING_DTYPE

from conftest import ARM64, X86_618, X86_SVM

# the events table's own columns, and each result frame's columns that count or name rather than time
NOT_TIME = {"ts"}


def frames(a: kvmtrace.Analysis) -> dict[str, pd.DataFrame]:
    out = {f"{n}.{k}": f for n, r in a.results.items() for k, f in r.frames.items()}
    out["findings"] = a.findings
    out["events"] = a.trace.events
    return out


def check(name: str, f: pd.DataFrame) -> None:
    for c in f.columns:
        dtype = f[c].dtype
        assert dtype != object, f"{name}.{c} is object"
        assert not c.endswith("_ts"), f"{name}.{c}: time columns are *_ns"
        if isinstance(dtype, pd.StringDtype) or str(dtype) in ("str", "string"):
            assert dtype == STRING_DTYPE, f"{name}.{c} is {dtype!r}, not the one string dtype"
        if pd.api.types.is_integer_dtype(dtype) and c not in ("cpu",) and len(f):
            assert not (f[c] == -1).any(), f"{name}.{c} holds -1 where NA is meant"


@pytest.mark.parametrize("path", [ARM64 / "arm64-6.1-prefix-nohzfull.dat", ARM64 / "arm64-6.1-fixed-tick.tracefs.txt.xz",
                                  X86_SVM / "x86-6.1-tick.dat"], ids=lambda p: p.name)
def test_frames_have_ns_times_na_and_one_string_dtype(path):
    a = kvmtrace.analyze(kvmtrace.load(path, cache=False))
    got = frames(a)
    for name, f in got.items():
        check(name, f)
    if path.suffix == ".xz":
        assert got["events"]["payload"].dtype == STRING_DTYPE
    w = got["irqsoff.windows"]
    # NA exactly where a window spans no guest run's return
    assert w["run"].isna().any()
    assert (w["run"].isna() == (w["kind"] == "other")).all()
    if "ticks.ticks" in got:
        t = got["ticks.ticks"]
        assert t.loc[t["place"] == "host code", "run_of"].isna().all()  # a tick in no run: NA, not -1
        assert t.loc[t["place"] == "in the guest run", "run_of"].notna().all()
        assert t["run_of"].notna().any()
        assert isinstance(t["charged"].dtype, pd.CategoricalDtype)


def test_a_trace_without_guests_has_typed_empty_frames():
    a = kvmtrace.analyze(kvmtrace.load(X86_618 / "host-idle.v7-zstd.dat", cache=False))
    assert len(a.findings) == 0 and len(a.runs) == 0
    assert a.findings["start_ns"].dtype == np.int64 and isinstance(a.findings["kind"].dtype, pd.CategoricalDtype)
    for name, f in frames(a).items():
        check(name, f)


def test_results_are_typed_attributes_and_the_presentation_reads_them():
    a = kvmtrace.analyze(kvmtrace.load(ARM64 / "arm64-6.1-prefix-nohzfull.dat", cache=False))
    assert a.exits.runs is a.frame("exits", "runs") and len(a.exits.runs) == 1667
    assert a.exits.reasons is a.frame("exits", "exit_reasons")
    assert a.irqsoff.windows is a.frame("irqsoff", "windows")
    assert a.irqsoff.runs_in_apparent_windows == a.results["irqsoff"].metrics["runs_in_apparent_windows"] == 1667
    assert a.rcu.guest_quiescent_states == a.results["rcu"].metrics["guest_eqs"] > 0
    assert a.rcu.handlers_in_guest_eqs == 835
    assert a.ticks.path == a.results["ticks"].metrics["path"]
    assert a.irqsoff.flag_windows is None  # preemptirq windows here: no flag-bounded ones
    host = kvmtrace.analyze(kvmtrace.load(X86_618 / "host-idle.v7-zstd.dat", cache=False))
    assert host.exits.runs is None and host.exits.cpus == [] and host.ticks.host_time_charged_to_guest_by_exit == {}
    host.exits.cpus.append(9)  # a default is a fresh copy, never shared
    assert host.exits.cpus == []
    # the CLI, the report, compare and the figures read attributes, never results["name"]
    root = Path(kvmtrace.__file__).parent
    by_name = [str(p.relative_to(root)) for d in ("cli", "report", "compare", "plot") for p in (root / d).rglob("*.py")
               if 'results["' in p.read_text()]
    assert not by_name, by_name
