"""``Trace``: the events table plus meta, with typed per-event frames on demand."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import MissingEventsError
from .fields import BASE_COLUMNS as _BASE
from .fields import decode_event, decode_rows
from .meta import TraceMeta
from .schema import concat
from .seqindex import SeqIndex


#: a ``df`` frame's key: the event, and the columns asked for (None: all of them, or every column
#: decoded at once, as from trace.dat records)
TypedKey = tuple[str, "tuple[str, ...] | None"]


@dataclass
class FieldCache:
    """The typed fields a Trace has decoded, so each is decoded once."""

    #: decoded while reading, or from the cache: event → seq + columns, rows in table order
    read: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: ``df`` frames (base columns + fields) by (event, columns)
    typed: dict[TypedKey, pd.DataFrame] = field(default_factory=dict)
    #: ``fields`` answers by (event, columns): (events-table rows, the field columns)
    picked: dict[tuple[str, tuple[str, ...]], tuple[np.ndarray, pd.DataFrame]] = field(default_factory=dict)
    #: the ``read`` frames' rows by seq, for taking a chunk's rows
    by_seq: dict[str, SeqIndex] = field(default_factory=dict)


class Records:
    """A trace.dat's records, for decoding fields on demand: read from the file on first use when the
    trace came from the cache or was loaded without them (``reopen``; ``loading.load(decode_now=)``). One object is shared by a trace and its chunks, so the
    file is re-read at most once."""

    def __init__(self, binary: object | None, reopen: str | None) -> None:
        self._binary, self.reopen = binary, reopen

    @property
    def present(self) -> bool:
        return self._binary is not None or self.reopen is not None

    def get(self) -> object:
        if self._binary is None and self.reopen is not None:
            from .readers import read

            self._binary = read(self.reopen).binary  # seq is the record index in a full read
        return self._binary


class Trace:
    """A loaded trace. ``events`` holds every event; ``df(name)`` one event type, typed.

    Typed decoding is lazy and cached per event name: a notebook that looks at
    ``kvm_exit`` does not pay for decoding three million ``kvm_emulate_insn``.
    """

    def __init__(self, events: pd.DataFrame, meta: TraceMeta, binary: object | None = None,
                 reopen: str | None = None, fields: dict[str, pd.DataFrame] | None = None,
                 records: Records | None = None) -> None:
        """``binary``: a trace.dat's records; ``reopen``: the trace.dat to re-read should a field be
        wanted that ``fields`` (decoded already: event → seq + columns, in table order) lacks;
        ``records``: both, shared with the trace this one is a part of."""
        self.events = events
        self.meta = meta
        self._records = records or Records(binary, reopen)
        self._decoded = FieldCache(read=dict(fields or {}))
        self._names: list[str] | None = None
        self._counts: pd.Series | None = None  # events per (event, cpu)

    @property
    def path(self) -> str:
        return self.meta.path

    @property
    def name(self) -> str:
        return os.path.basename(self.meta.path)

    @property
    def has_binary(self) -> bool:
        """Typed fields come from trace.dat records (there is no printed payload)."""
        return self._records.present

    @property
    def binary(self) -> object:
        """The trace.dat's records (``readers.tracedat.BinarySource``), read now if the trace came
        from the cache; None for text."""
        return self._records.get()

    @property
    def decoded(self) -> dict[str, pd.DataFrame]:
        """Fields decoded while reading (or from the cache): event → seq + columns, in table order."""
        return self._decoded.read

    def count_as(self, counts: pd.Series) -> None:
        """Answer ``event_cpu_counts``, ``event_names`` and ``has`` with ``counts`` (events per (event,
        cpu)): those of the whole trace, when this is a piece of it, so what is missing is decided
        from the whole trace, not the piece."""
        self._counts = counts
        self._names = None

    def event_names(self) -> list[str]:
        """Event types present, most frequent first (counted once per Trace)."""
        if self._names is None:
            vc = self.event_cpu_counts().groupby(level=0, observed=True).sum().sort_values(ascending=False, kind="stable")
            self._names = [str(n) for n, c in vc.items() if c > 0]
        return self._names

    def event_cpu_counts(self) -> pd.Series:
        """Events per (event, cpu): of the whole trace, also when the events were streamed."""
        if self._counts is None:
            self._counts = _counts_by_event_and_cpu(self.events)
        return self._counts

    def has(self, *names: str) -> bool:
        present = set(self.event_names())
        return all(n in present for n in names)

    def df(self, name: str, columns: list[str] | tuple[str, ...] | None = None) -> pd.DataFrame:
        """Rows of event ``name`` with its fields decoded into typed columns.

        ``columns`` names the fields needed (the base columns always come): text
        traces then convert only those, which is most of the decoding cost.
        Raises ``KeyError`` naming the closest event names when the trace has no ``name`` events.
        """
        self._require(name)
        typed = self._decoded.typed
        if (name, None) in typed:
            full = typed[(name, None)]
            return full if columns is None else full[[*_BASE, *(c for c in columns if c in full.columns)]]
        key: TypedKey = (name, None if columns is None or self.has_binary else tuple(sorted(columns)))
        if key not in typed:
            rows = self.events[self.events["event"] == name]
            if name in self._decoded.read:
                fields = self._decoded.read[name].drop(columns="seq")
                base = rows[_BASE].reset_index(drop=True)
                typed[key] = pd.concat([base, fields], axis=1) if len(fields.columns) else base
            elif "payload" not in self.events.columns and not self.has_binary:
                raise MissingEventsError(f"{name}: its fields were not kept by the selective load ({self.meta.selection})")
            elif self.has_binary:
                from .fields.binary import decode_binary

                typed[key] = decode_binary(name, rows, self.binary)  # type: ignore[arg-type]
            else:
                typed[key] = decode_event(name, rows, None if columns is None else tuple(columns))
        out = typed[key]
        return out if columns is None else out[[*_BASE, *(c for c in columns if c in out.columns)]]

    def _require(self, name: str) -> None:
        if not self.has(name):
            import difflib

            close = difflib.get_close_matches(name, self.event_names(), n=3, cutoff=0.5)
            hint = f"; closest: {', '.join(close)}" if close else f"; it has {len(self.event_names())} event types (Trace.counts())"
            raise MissingEventsError(f"{self.name}: no {name!r} events{hint}")

    def fields(self, name: str, columns: list[str] | tuple[str, ...], base: tuple[str, ...] = ()) -> pd.DataFrame:
        """``seq``, the ``base`` columns asked for and the named fields of event ``name``.

        What the model reads: for a million rcu events, copying every base column
        costs more than decoding the two fields it needs.
        """
        key = (name, tuple(sorted(columns)))
        picked = self._decoded.picked
        if key not in picked:
            mask = (self.events["event"] == name).to_numpy(bool)
            rows = np.flatnonzero(mask)
            known = self._decoded.read.get(name, self._decoded.typed.get((name, None)))
            if known is not None:
                got = known[[c for c in columns if c in known.columns]]
            elif "payload" not in self.events.columns and not self.has_binary:
                got = pd.DataFrame(index=range(len(rows)))  # not kept by a selective load: no fields
            elif self.has_binary:
                from .fields.binary import binary_fields

                got = binary_fields(name, self.events["seq"].to_numpy(np.int64)[rows], self.binary,  # type: ignore[arg-type]
                                    tuple(columns))
            else:
                # Arrow's filter by a mask: taking the rows through pandas gathers each string
                # one by one (2.8 s against 0.13 s for 6.1M of 10M payloads)
                got = decode_rows(name, pa.array(self.events["payload"].array), mask, tuple(columns))
            picked[key] = (rows, got)
        rows, got = picked[key]
        out = {c: self.events[c].to_numpy()[rows] for c in ("seq", *base)}
        out.update({c: got[c].array for c in columns if c in got.columns})
        return pd.DataFrame(out, copy=False)  # the decoded columns are shared, not copied

    def without(self, *names: str) -> "Trace":
        """The same trace as if events ``names`` had not been recorded (keeps seq numbers).

        Answers "what could be decided without preemptirq/rcu events?" on a real trace.
        """
        keep = ~self.events["event"].astype(object).isin(names)
        out = Trace(self.events[keep.to_numpy()], self.meta, records=self._records)
        out._decoded.typed = {k: v for k, v in self._decoded.typed.items() if k[1] is None and k[0] not in names}
        return out

    def rows(self, rows: np.ndarray) -> "Trace":
        """The events at table ``rows`` (ascending) as a trace of their own: one chunk of a huge trace.

        It keeps the whole trace's seq numbers, meta and event names (so analyzers decide
        what is missing from the whole trace, not from the chunk), and the fields already
        decoded for those rows.
        """
        rows = np.asarray(rows, dtype=np.int64)
        out = Trace(self.events.iloc[rows].reset_index(drop=True), self.meta, records=self._records)
        out._names = self.event_names()
        mine = self._decoded
        for name, f in mine.read.items():
            if name not in mine.by_seq:  # the decoded fields' rows by seq, once per trace
                mine.by_seq[name] = SeqIndex(f["seq"].to_numpy(np.int64))
            want = out.events["seq"].to_numpy(np.int64)[(out.events["event"] == name).to_numpy(bool)]
            out._decoded.read[name] = f.iloc[mine.by_seq[name][want]].reset_index(drop=True)
        for key, (have, got) in mine.picked.items():
            i = np.minimum(np.searchsorted(rows, have), max(len(rows) - 1, 0))
            keep = (rows[i] == have) if len(rows) else np.zeros(len(have), bool)
            out._decoded.picked[key] = (i[keep], got[keep].reset_index(drop=True))
        return out

    def joined(self, after: "Trace") -> "Trace":
        """These events, then the events of ``after`` (a later piece of the same stream), as one trace
        with both pieces' decoded fields; meta and event names are ``after``'s."""
        mine, theirs = self._decoded.read, after._decoded.read
        out = Trace(concat([self.events, after.events]), after.meta,
                    fields={name: concat([mine.get(name), theirs.get(name)]) for name in set(mine) | set(theirs)})
        out._names = after._names
        return out

    def only(self, cpus: "tuple[int, ...] | None" = None, start_ns: int | None = None, end_ns: int | None = None) -> "Trace":
        """The events on ``cpus`` within [start_ns, end_ns] (trace timestamps; None: no bound), as a
        trace of their own that keeps seq numbers and decoded fields (``rows``): ``--cpu``, ``--start``,
        ``--end``. Runs and windows cut open at the bounds are trace edges: never evidence."""
        if cpus is None and start_ns is None and end_ns is None:
            return self
        ev = self.events
        keep = np.ones(len(ev), bool)
        if cpus is not None:
            keep &= np.isin(ev["cpu"].to_numpy(), np.asarray(cpus, np.int64))
        ts = ev["ts"].to_numpy(np.int64)
        if start_ns is not None:
            keep &= ts >= start_ns
        if end_ns is not None:
            keep &= ts <= end_ns
        out = self.rows(np.flatnonzero(keep))
        out._names = None  # the event types of what is kept
        return out

    def payload(self, name: str) -> pd.Series:
        """Printable fields of event ``name``, one string per row, rendered only now.

        Text traces keep what the tool printed. trace.dat records are rendered
        from their typed fields as ``field=value`` pairs (kvmtrace's rendering,
        not the kernel's TP_printk): this is the costly step trace-cmd always pays.
        """
        self._require(name)
        rows = self.events[self.events["event"] == name]
        if not self.has_binary:
            return rows["payload"].reset_index(drop=True)
        typed = self.df(name)
        fields = [c for c in typed.columns if c not in _BASE]
        if not fields:
            return pd.Series([""] * len(typed), dtype="string")
        parts = [c + "=" + typed[c].astype("string").fillna("?") for c in fields]
        out = parts[0]
        for p in parts[1:]:
            out = out + " " + p
        return out.reset_index(drop=True)

    def counts(self) -> pd.DataFrame:
        """Events per type (rows) and CPU (columns), with a total column."""
        ev = self.events
        if not len(ev):
            return pd.DataFrame()
        t = _counts_by_event_and_cpu(ev).unstack("cpu", fill_value=0)  # not one string per event
        t.index = pd.Index(t.index.astype(str), name="event")
        t["total"] = t.sum(axis=1)
        return t.sort_index().sort_values("total", ascending=False, kind="stable")  # ties by name

    def __repr__(self) -> str:
        m = self.meta
        return (f"<Trace {self.name}: {m.events} events, {m.source_format}, cpus={m.cpus}, "
                f"skipped={m.skipped_total}, lost={m.lost_total}>")


def _counts_by_event_and_cpu(events: pd.DataFrame, step: int = 1 << 20) -> pd.Series:
    """Events per (event, cpu), in (event category, cpu) order, counted with ``bincount`` over the
    category codes and the CPUs, a million rows at a time (a pandas group-by of millions of rows
    takes ~10x longer, and whole-table int64 keys were the load's peak); a table with very many
    distinct pairs, or CPU numbers no kernel has, is grouped by pandas instead."""
    name = events["event"]
    names = name.array if isinstance(name.dtype, pd.CategoricalDtype) else pd.Categorical(name)
    cpu = events["cpu"].to_numpy()
    codes = np.asarray(names.codes)
    width = int(cpu.max()) + 1 if len(cpu) else 1
    kinds = len(names.categories)
    if not len(cpu) or int(cpu.min()) < 0 or kinds * width > 4 * len(events) + 65536:
        return events.groupby(["event", "cpu"], observed=True).size()
    bins = np.zeros(kinds * width, np.int64)
    for a in range(0, len(cpu), step):
        c, k = cpu[a:a + step], codes[a:a + step]
        key = k.astype(np.int64) * width + c
        bins += np.bincount(key[k >= 0] if (k < 0).any() else key, minlength=kinds * width)
    seen = np.flatnonzero(bins)
    index = pd.MultiIndex.from_arrays(
        [pd.Categorical.from_codes(seen // width, dtype=names.dtype), (seen % width).astype(cpu.dtype)],
        names=["event", "cpu"])
    return pd.Series(bins[seen], index=index)
