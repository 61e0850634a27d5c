"""Typed per-event columns straight from trace.dat records (same columns as ``specs.py``).

Each known event maps its raw record fields to the canonical columns the text
decoder produces, resolving pointers the way the kernel's print format does:
``%pS`` through kallsyms, tracepoint strings through printk formats, and
``__print_symbolic`` tables from the event's own format file.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..readers.tracedat import BinarySource
from ..readers.tracedat.formats import EventFormat, constant
from ..readers.tracedat.records import field_of
from .convert import to_category
from .decode import SLICE_ROWS, concat_columns
from .specs import BASE_COLUMNS

Cols = dict[str, object]


def _int(v: np.ndarray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(v.astype(np.int64), np.zeros(len(v), bool))


def _uint(v: np.ndarray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(v.astype(np.uint64), np.zeros(len(v), bool))


def _cat(values: Any) -> pd.Categorical:
    if isinstance(values, pd.Categorical):
        return values
    if isinstance(values, pa.Array):
        return to_category(values)
    return to_category(pa.array(values if isinstance(values, np.ndarray) else list(values), pa.large_string()))


def _coded(inv: np.ndarray, names: list) -> pd.Categorical:
    """Rows given as indices into ``names`` (None = NA; ``inv`` from ``pd.factorize``, so names are in
    the order their rows first appear) → Categorical with each name once, in that order, as text's."""
    cats = list(dict.fromkeys(n for n in names if n is not None))
    code = {n: i for i, n in enumerate(cats)}
    lut = np.array([code[n] if n is not None else -1 for n in names] + [-1], dtype=np.int32)
    return pd.Categorical.from_codes(lut[inv], dtype=pd.CategoricalDtype(pd.Index(cats, dtype=object)))


def _mapped(vals: np.ndarray, lookup: Callable[[Any], Any]) -> pd.Categorical:
    """``lookup`` applied once per distinct value (tables, printk strings), as a Categorical of all rows."""
    if not len(vals):
        return pd.Categorical([])
    inv, uniq = pd.factorize(vals)  # hashing, not sorting: a million rcu events have two values
    return _coded(inv, [lookup(int(u)) for u in uniq])


class MissingField(KeyError):
    """An event's format lacks a field its adapter reads (another kernel, or a damaged format)."""


class _Rows:
    """Raw field access for the rows of one event format."""

    def __init__(self, src: BinarySource, fmt: EventFormat, rows: np.ndarray,
                 want: tuple[str, ...] | None = None) -> None:
        self.src, self.fmt, self.rows, self.want = src, fmt, rows, want

    def wants(self, column: str) -> bool:
        """Whether the caller asked for ``column`` (all columns when it named none)."""
        return self.want is None or column in self.want

    def has(self, name: str) -> bool:
        return name in self.fmt.fields

    def num(self, *names: str) -> np.ndarray:
        f = field_of(self.fmt, *names)
        if f is None:
            raise MissingField(f"{self.fmt.name}: no field {'/'.join(names)}")
        return self.src.store.number(self.rows, f)

    def string(self, name: str) -> pa.Array:
        return self.src.store.string(self.rows, self.fmt.fields[name])

    def symbolic(self, name: str, values: np.ndarray | None = None, table: int = 0) -> pd.Categorical:
        tables = self.fmt.symbolic(name)
        vals = self.num(name) if values is None else values
        t = tables[table] if len(tables) > table else {}
        return _mapped(vals, lambda v: t.get(v, hex(v)))

    def printk(self, name: str) -> pd.Categorical:
        strings = self.src.printk
        return _mapped(self.num(name).astype(np.uint64), lambda v: strings.get(v & 0xFFFFFFFFFFFFFFFF))

    def sym(self, addr: np.ndarray) -> tuple[pd.Categorical, pd.arrays.IntegerArray]:
        inv, uniq = pd.factorize(addr.astype(np.uint64))  # few distinct call sites: resolve each once
        names, offs = self.src.symbols.resolve(np.asarray(uniq, dtype=np.uint64))
        off = np.append(offs, -1)[inv] if len(addr) else np.zeros(0, np.int64)
        return _coded(inv, list(names)), pd.arrays.IntegerArray(np.maximum(off, 0), off < 0)


def _kvm_entry(r: _Rows) -> Cols:
    if r.has("vcpu_pc") or r.has("pc"):
        return {"vcpu_pc": _uint(r.num("vcpu_pc", "pc"))}
    out: Cols = {"vcpu": _int(r.num("vcpu_id"))}
    if r.has("rip"):
        out["rip"] = _uint(r.num("rip"))
    if r.has("immediate_exit"):
        imm = r.num("immediate_exit") != 0
        if imm.any():
            out["immediate_exit"] = pd.arrays.BooleanArray(imm, np.zeros(len(imm), bool))
    return out


def _kvm_exit(r: _Rows) -> Cols:
    if r.has("esr_ec"):
        ec = r.num("esr_ec")
        return {"exit_type": _cat(r.symbolic("ret")), "esr_ec": _int(ec),
                "esr_ec_class": _cat(r.symbolic("esr_ec", ec)), "vcpu_pc": _uint(r.num("vcpu_pc"))}
    reason = r.num("exit_reason")
    isa = r.num("isa") if r.has("isa") else np.ones(len(reason), np.int64)
    vmx = r.symbolic("exit_reason", reason & 0xFFFF, 0)
    svm = r.symbolic("exit_reason", reason, 1) if len(r.fmt.symbolic("exit_reason")) > 1 else vmx
    out: Cols = {}
    if r.has("vcpu_id"):
        out["vcpu"] = _int(r.num("vcpu_id"))
    out["reason"] = _cat(v if i == 1 else s for v, s, i in zip(vmx, svm, isa))
    failed = (isa == 1) & ((reason & 0x80000000) != 0)
    if failed.any():
        out["reason_flags"] = _cat("FAILED_VMENTRY" if f else None for f in failed)
    out["rip"] = _uint(r.num("guest_rip"))
    for name in ("info1", "info2", "intr_info", "error_code"):
        if r.has(name):
            out[name] = _uint(r.num(name).astype(np.uint64) & (0xFFFFFFFF if name in ("intr_info", "error_code") else 0xFFFFFFFFFFFFFFFF))
    return out


def _userspace_exit(r: _Rows) -> Cols:
    reason, err = r.num("reason"), r.num("errno")
    names = r.symbolic("reason", reason)
    # the kernel's TP_printk: errno < 0 ? (errno == -EINTR ? "restart" : "error") : reason name
    label = ["restart" if e == -4 else "error" if e < 0 else n for n, e in zip(names, err)]
    return {"reason": _cat(label), "code": _int(np.where(err < 0, -err, reason))}


def _preemptirq(r: _Rows) -> Cols:
    out: Cols = {}
    for f in ("caller", "parent"):
        if not (r.wants(f) or r.wants(f"{f}_off")):
            continue
        addr = (np.uint64(r.src.stext) + r.num(f"{f}_offs").astype(np.int64).astype(np.uint64)).astype(np.uint64)
        out[f], out[f"{f}_off"] = r.sym(addr)
    return out


def _rcu_nesting(r: _Rows) -> Cols:
    out: Cols = {}
    if r.wants("polarity"):
        out["polarity"] = _cat(r.printk("polarity"))
    for k in ("oldnesting", "newnesting"):
        if r.wants(k):
            out[k] = _int(r.num(k))
    if r.wants("counter"):
        out["counter"] = _int(r.num("dynticks", "counter", "watching") & 0xFFF)
    return out


def _hrtimer(keys: tuple[str, ...]) -> Callable[[_Rows], Cols]:
    def decode(r: _Rows) -> Cols:
        out: Cols = {"hrtimer": _uint(r.num("hrtimer"))}
        if "function" in keys:
            out["function"] = r.sym(r.num("function").astype(np.uint64))[0]
        for k in ("expires", "softexpires", "now"):
            if k in keys:
                out[k] = _int(r.num(k))
        if "mode" in keys:
            out["mode"] = _cat(r.symbolic("mode"))
        return out
    return decode


def _sched_switch(r: _Rows) -> Cols:
    state = r.num("prev_state")
    flags = _print_flags(r.fmt.print_fmt)
    # TASK_REPORT_MAX as the format spells it: "4096" (≤4.13) or "(((0x.. | ..) + 1) << 1)"
    m = re.search(r'REC->prev_state & (0x[0-9a-fA-F]+|\d+|\(\(\([0-9a-fA-Fx |]+\) \+ 1\) << 1\)) \? "\+"', r.fmt.print_fmt)
    top = (constant(m.group(1)) or 0) if m else 0
    letters = []
    for s in state:
        s = int(s)
        bits = [flags[v] for v in flags if s & ((top - 1) if top else ~0) & v]
        letters.append(("|".join(bits) if bits else "R") + ("+" if top and s & top else ""))
    return {"prev_comm": _cat(r.string("prev_comm")), "prev_pid": _int(r.num("prev_pid")),
            "prev_prio": _int(r.num("prev_prio")), "prev_state": _cat(letters),
            "next_comm": _cat(r.string("next_comm")), "next_pid": _int(r.num("next_pid")),
            "next_prio": _int(r.num("next_prio"))}


def _print_flags(fmt: str) -> dict[int, str]:
    i = fmt.find("__print_flags(")
    if i < 0:
        return {}
    return {int(v, 0): s for v, s in re.findall(r'\{\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*"([^"]*)"\s*\}', fmt[i:])}


def _wakeup(r: _Rows) -> Cols:
    out: Cols = {"wakee_comm": _cat(r.string("comm")), "wakee_pid": _int(r.num("pid")), "prio": _int(r.num("prio"))}
    if r.has("success"):
        out["success"] = _int(r.num("success"))
    out["target_cpu"] = _int(r.num("target_cpu"))
    return out


ADAPTERS: dict[str, Callable[[_Rows], Cols]] = {
    "kvm_entry": _kvm_entry,
    "kvm_exit": _kvm_exit,
    "kvm_userspace_exit": _userspace_exit,
    "irq_disable": _preemptirq, "irq_enable": _preemptirq,
    "preempt_disable": _preemptirq, "preempt_enable": _preemptirq,
    "rcu_dyntick": _rcu_nesting, "rcu_watching": _rcu_nesting,
    "rcu_utilization": lambda r: {"s": _cat(r.printk("s"))},
    "irq_handler_entry": lambda r: {"irq": _int(r.num("irq")), "name": _cat(r.string("name"))},
    "irq_handler_exit": lambda r: {"irq": _int(r.num("irq")),
                                   "ret": _cat("handled" if v else "unhandled" for v in r.num("ret"))},
    "softirq_entry": lambda r: {"vec": _int(r.num("vec")), "action": _cat(r.symbolic("vec"))},
    "softirq_exit": lambda r: {"vec": _int(r.num("vec")), "action": _cat(r.symbolic("vec"))},
    "softirq_raise": lambda r: {"vec": _int(r.num("vec")), "action": _cat(r.symbolic("vec"))},
    "ipi_raise": lambda r: {"target_mask": _cat(r.src.store.bitmask(r.rows, r.fmt.fields["target_cpus"])),
                            "reason": _cat(r.printk("reason"))},
    "ipi_entry": lambda r: {"reason": _cat(r.printk("reason"))},
    "ipi_exit": lambda r: {"reason": _cat(r.printk("reason"))},
    "hrtimer_start": _hrtimer(("function", "expires", "softexpires", "mode")),
    "hrtimer_expire_entry": _hrtimer(("function", "now")),
    "hrtimer_expire_exit": _hrtimer(()),
    "hrtimer_cancel": _hrtimer(()),
    "tick_stop": lambda r: {"success": _int(r.num("success")), "dependency": _cat(r.symbolic("dependency"))},
    "local_timer_entry": lambda r: {"vector": _int(r.num("vector"))},
    "local_timer_exit": lambda r: {"vector": _int(r.num("vector"))},
    "sched_switch": _sched_switch,
    "sched_wakeup": _wakeup, "sched_waking": _wakeup, "sched_wakeup_new": _wakeup,
    "user_enter": lambda r: {}, "user_exit": lambda r: {},
}


def _generic(r: _Rows) -> Cols:
    """Every non-common field as a column: numbers typed, strings categorical."""
    out: Cols = {}
    for f in r.fmt.fields.values():
        if f.name.startswith("common_"):
            continue
        if f.is_string:
            out[f.name] = _cat(r.string(f.name))
        elif f.data_loc or f.rel_loc or (f.array_len and f.size > 8) or f.size == 0:
            continue  # arrays, and size-0 tails that are no number (bprint's binary arguments)
        elif f.size <= 8:
            v = r.src.store.number(r.rows, f)
            out[f.name] = _uint(v) if (f.size == 8 and not f.signed) else _int(v)
    return out


def _adapt(name: str, r: _Rows) -> Cols:
    """The event's own adapter; its generic field-by-field decoding if the format lacks a field;
    no fields from a damaged format (its records are counted damage)."""
    if r.fmt.damaged is not None:
        return {}
    try:
        return ADAPTERS.get(name, _generic)(r)
    except MissingField:
        return _generic(r)


def binary_fields(name: str, seq: np.ndarray, src: BinarySource, want: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Typed field columns of event ``name`` for the records ``seq`` (seq is the record index);
    adapters that can skip fields skip those not in ``want``."""
    seq = src.rows(seq)
    tids = src.type_id[seq]
    if len(tids) and (tids == tids[0]).all():  # one format: no concat and re-sort
        fmt = src.formats[int(tids[0])]
        # a slice of rows at a time: its temporaries are reused, not fresh mappings faulted in page by page
        parts = [_adapt(name, _Rows(src, fmt, seq[a:a + SLICE_ROWS], want)) for a in range(0, len(seq), SLICE_ROWS)]
        if any(p.keys() != parts[0].keys() for p in parts):  # a column only some rows show (kvm_exit's reason_flags)
            parts = [_adapt(name, _Rows(src, fmt, seq, want))]
        return pd.DataFrame({c: concat_columns([p[c] for p in parts]) for c in parts[0]}, copy=False)
    pieces: list[pd.DataFrame] = []
    for tid in np.unique(tids):
        sel = np.flatnonzero(tids == tid)
        r = _Rows(src, src.formats[int(tid)], seq[sel], want)
        pieces.append(pd.DataFrame(_adapt(name, r), index=sel))
    return pd.concat(pieces).sort_index().reset_index(drop=True) if pieces else pd.DataFrame(index=range(0))


def decode_binary(name: str, rows: pd.DataFrame, src: BinarySource) -> pd.DataFrame:
    """Typed frame for event ``name`` from its binary records."""
    base = rows[BASE_COLUMNS].reset_index(drop=True)
    fields = binary_fields(name, rows["seq"].to_numpy(np.int64), src)
    out = pd.concat([base, fields], axis=1) if len(fields.columns) else base
    out.attrs["event"] = name
    out.attrs["unparsed"] = 0
    return out
