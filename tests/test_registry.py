"""The analyzer protocol as a newcomer uses it: one small analyzer, one line in the registry, and it
runs whole, chunked and streamed, reports in ``--json``, and is kept by a selective load."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import kvmtrace
from kvmtrace import analyzers
from kvmtrace.analyzers import registry
from kvmtrace.analyzers.base import MODEL_NEEDS, Analyzer, Context, Result, Whole, by_cpu, needs

from conftest import ARM64


def collect(ctx: Context) -> Result:
    """The guest runs this part owns: CPU and time in the guest."""
    r = ctx.runs
    own = ctx.tl.owns(r.entry_pos)
    return Result("longest", frames={"runs": r.frame.loc[own, ["cpu", "guest_ns"]].reset_index(drop=True)})


def finish(parts: list[Result], whole: Whole) -> Result:
    """The longest guest run of each CPU (in µs), over the whole trace."""
    runs = by_cpu([p.frames.pop("runs") for p in parts])
    longest = runs.groupby("cpu")["guest_ns"].max() if len(runs) else pd.Series(dtype=np.int64)
    return Result("longest", metrics={"longest_guest_us": {str(c): v / 1e3 for c, v in longest.items()},
                                      "runs_seen": len(whole.runs)})


EXAMPLE = Analyzer("longest", "the longest guest run per CPU", needs(MODEL_NEEDS, {"sched_switch": ("prev_state",)}),
                   finish, collect, after=("exits",))


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", registry.REGISTRY + (EXAMPLE,))  # the one line


def test_an_added_analyzer_runs_whole_chunked_and_streamed(registered):
    path = ARM64 / "arm64-6.1-fixed-tick.dat"
    whole = kvmtrace.analyze(kvmtrace.load(path))
    runs = whole.runs
    expected = {str(c): v / 1e3 for c, v in runs.groupby("cpu")["guest_ns"].max().items()}
    assert whole.results["longest"].metrics == {"longest_guest_us": expected, "runs_seen": 1829}
    assert whole.to_json()["metrics"]["longest"]["runs_seen"] == 1829
    assert list(whole.results)[-1] == "longest"  # reported after the others, in registry order
    chunked = kvmtrace.analyze(kvmtrace.load(path), chunk_events=5000)
    streamed = analyzers.load_and_analyze(str(path), analyzers.Options(low_memory=True, chunk_events=5000))
    assert chunked.results["longest"].metrics == streamed.results["longest"].metrics == whole.results["longest"].metrics


def test_needs_are_declared_once_and_drive_the_selective_load(registered):
    """What a selective load keeps is the union of the analyzers' declarations: a new analyzer's
    event and field are kept and decoded without any other edit."""
    sel = analyzers.selection()
    assert "sched_switch" in sel.events and sel.fields["sched_switch"] == ("prev_state",)
    assert sel.fields["kvm_exit"] == ("exit_type", "esr_ec", "esr_ec_class", "reason")  # the model's own
    assert {"irq_handler_entry", "irq_handler_exit", "tick_stop"} <= sel.events


def test_an_analyzer_waiting_on_an_unknown_or_circular_one_is_refused():
    late = Analyzer("late", "", {}, finish, after=("nowhere",))
    with pytest.raises(ValueError, match="unknown"):
        registry.finishing_order(registry.REGISTRY + (late,))
    a = Analyzer("a", "", {}, finish, after=("b",))
    b = Analyzer("b", "", {}, finish, after=("a",))
    with pytest.raises(ValueError, match="wait on each other"):
        registry.finishing_order((a, b))
