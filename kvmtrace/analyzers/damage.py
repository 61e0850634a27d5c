"""Events the analyses read whose payload could not be decoded (a cut, garbled or wrapped line).

Such an event still counts by its name, but what its payload says (a caller, an RCU
polarity word, a timer function, an exit reason) is unknown. Each is counted, and a
proven finding whose evidence spans one on its CPU is downgraded to inferred: damage
never creates, nor silently carries, a proof.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..model.timeline import empty_brackets, unpaired_toggles
from .base import MODEL_NEEDS, Analyzer, Context, Frame, Metric, Result, Whole, by_cpu, made_inferred

#: what each analysis reads from the payloads that can be damaged
READS = {"irq_disable": "caller", "irq_enable": "caller", "rcu_dyntick": "polarity", "rcu_watching": "polarity",
         "hrtimer_expire_entry": "function/now", "kvm_exit": "exit reason"}


#: the kernel's limits (NR_CPUS at most 8192; PID_MAX_LIMIT 4M): a larger value is a damaged line
MAX_CPUS = 8192
PID_MAX_LIMIT = 4 * 1024 * 1024


class Damage(Result):
    """Damage the analyses saw. ``damaged``: ``seq``, ``cpu`` (NA: unknown, a garbled line) and
    ``event`` (the event, or what kind of line) of every event or line that could not be read."""

    damaged = Frame()
    undecoded_payloads = Metric[dict[str, int]]({})
    impossible_cpu_or_pid = Metric(0)
    events_where_an_irq_toggle_is_missing = Metric(0)
    empty_rcu_brackets = Metric(0)


def collect(ctx: Context) -> Result:
    """The damaged events this part of the trace owns: seq, cpu, event."""
    res = Result("damage")
    tl, r = ctx.tl, ctx.runs
    pos = np.flatnonzero(tl.damaged)
    if len(r.frame):
        bad_exit = r.exit_pos[(r.frame["reason"] == "?").to_numpy()]
        pos = np.union1d(pos, bad_exit)
    pos = pos[tl.owns(pos)]
    names = ctx.trace.events["event"].to_numpy()[tl.row[pos]] if len(pos) else np.zeros(0, object)
    # a CPU or pid no kernel has: the line was damaged, and the event is missing from its real CPU
    # (which is unknown: −1, any CPU)
    cpus = min(ctx.trace.meta.cpus or MAX_CPUS, MAX_CPUS)
    odd = np.flatnonzero((tl.pid < 0) | (tl.pid > PID_MAX_LIMIT) | (tl.cpu >= cpus))
    odd = odd[tl.owns(odd)]
    # a stretch where an irq toggle is missing (two of a kind in a row): events lost there
    lost = np.flatnonzero(unpaired_toggles(tl.cls, tl.cpu))
    lost = lost[tl.owns(lost)]
    # an RCU nesting bracket whose tracepoint is gone
    empty = np.flatnonzero(empty_brackets(tl.cls, tl.cpu, tl.rcu_change))
    empty = empty[tl.owns(empty)]
    res.frames["damaged"] = pd.DataFrame({
        "seq": np.r_[tl.seq[pos], tl.seq[odd], tl.seq[lost], tl.seq[empty]],
        "cpu": np.r_[tl.cpu[pos], np.full(len(odd), -1, tl.cpu.dtype), tl.cpu[lost], tl.cpu[empty]],
        "event": pd.array(np.r_[names, np.full(len(odd), "(impossible CPU or pid)", object),
                                np.full(len(lost), "(missing irq toggle)", object),
                                np.full(len(empty), "(empty RCU bracket)", object)], dtype=object)})
    return res


def finish(parts: list[Result], whole: Whole) -> Result:
    """Counts per event, and a note for each kind of payload that could not be read. What the reader
    saw damaged (``meta.damaged``) joins them: unparsable lines on every CPU (``cpu`` NA: which CPU a
    garbled line was on is not known), repaired event lines on their own."""
    res = Damage("damage")
    meta = whole.trace.meta
    damaged = by_cpu([p.frames.pop("damaged") for p in parts])
    named = damaged["event"].astype(str) if len(damaged) else pd.Series([], dtype=str)
    counts = {str(k): int(v) for k, v in named[~named.str.startswith("(")].value_counts().items()}
    impossible = int((named == "(impossible CPU or pid)").sum())
    unpaired = int((named == "(missing irq toggle)").sum())
    empty = int((named == "(empty RCU bracket)").sum()) // 2  # both ends of each
    if meta.damaged:
        at = np.asarray(meta.damaged, np.int64).reshape(-1, 2)
        lines = pd.DataFrame({"seq": at[:, 0], "cpu": at[:, 1].astype(np.int32),
                              "event": pd.array(np.where(at[:, 1] < 0, "(unparsable line)", "(damaged event)"),
                                                dtype=object)})
        damaged = pd.concat([damaged, lines], ignore_index=True) if len(damaged) else lines
    cpu = damaged["cpu"].to_numpy(np.int32)
    res.frames["damaged"] = damaged.assign(cpu=pd.arrays.IntegerArray(cpu, cpu < 0),  # NA: which CPU is not known
                                           event=pd.Categorical(damaged["event"].astype(str)))
    res.metrics = {"undecoded_payloads": counts, "impossible_cpu_or_pid": impossible,
                   "events_where_an_irq_toggle_is_missing": unpaired, "empty_rcu_brackets": empty}
    for event, n in counts.items():
        res.undecidable.append({"analysis": "damage", "what": f"{n:,} {event} events whose {READS.get(event, 'payload')} "
                                f"could not be decoded: findings spanning them are inferred",
                                "missing": [], "record": "a complete, unwrapped copy of the trace"})
    return res


def downgrade(findings: pd.DataFrame, damaged: pd.DataFrame) -> pd.DataFrame:
    """``findings`` with every proven one whose evidence span holds a damaged event on its CPU made inferred."""
    if not len(findings) or not len(damaged):
        return findings
    ev = pa.array(findings["evidence_seq"].array)
    flat = pc.list_flatten(ev).to_numpy(zero_copy_only=False).astype(np.int64)
    parent = pc.list_parent_indices(ev).to_numpy(zero_copy_only=False)
    known = flat >= 0  # −1: no such event (a tick outside any run)
    first = np.full(len(findings), np.iinfo(np.int64).max)
    last = np.full(len(findings), -1)
    np.minimum.at(first, parent[known], flat[known])
    np.maximum.at(last, parent[known], flat[known])
    hit = spans_damage(findings["cpu"].to_numpy(np.int64), first, last, damaged)
    return made_inferred(findings, hit, "an event inside the evidence, or a line between its events, could not "
                                        "be decoded (cut or garbled line)")


def spans_damage(cpu: np.ndarray, first: np.ndarray, last: np.ndarray, damaged: pd.DataFrame) -> np.ndarray:
    """Per span (``first``..``last`` seqs on ``cpu``): a damaged event or line inside it, on its CPU
    or on an unknown one (NA: a garbled line)."""
    hit = np.zeros(len(cpu), bool)
    for c, g in damaged.groupby("cpu", dropna=False):
        seqs = np.sort(g["seq"].to_numpy(np.int64))
        on = np.ones(len(cpu), bool) if pd.isna(c) else cpu == int(c)
        hit[on] |= np.searchsorted(seqs, last[on], side="right") > np.searchsorted(seqs, first[on])  # each group adds
    return hit


ANALYZER = Analyzer("damage", "events whose payload the analyses read could not be decoded; findings spanning them "
                    "are made inferred", MODEL_NEEDS, finish, collect)
