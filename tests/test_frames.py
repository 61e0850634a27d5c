"""What every frame kvmtrace returns looks like: time columns named ``*_ns`` (the events' own
``ts`` aside), missing values NA (never −1), text either categorical or the one string dtype, and
frames without rows still typed."""
from __future__ import annotations

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
