"""``Trace``: the events table plus meta, with typed per-event frames on demand."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .errors import MissingEventsError
from .fields import BASE_COLUMNS as _BASE
from .fields import decode_event, decode_fields
from .meta import TraceMeta
from .schema import concat
from .seqindex import SeqIndex


class Trace:
    """A loaded trace. ``events`` holds every event; ``df(name)`` one event type, typed.

    Typed decoding is lazy and cached per event name: a notebook that looks at
    ``kvm_exit`` does not pay for decoding three million ``kvm_emulate_insn``.
    """

    def __init__(self, events: pd.DataFrame, meta: TraceMeta, binary: object | None = None,
                 reopen: str | None = None, fields: dict[str, pd.DataFrame] | None = None) -> None:
        """``binary``: a trace.dat's records; ``reopen``: the trace.dat to re-read should a field be
        wanted that ``fields`` (decoded already: event → seq + columns, in table order) lacks."""
        self.events = events
        self.meta = meta
        self._binary = binary  # trace.dat records, for decoding fields without text
        self._reopen = reopen  # a cached trace.dat: re-read the file only if a field is not cached
        self._cached: dict[str, pd.DataFrame] = dict(fields or {})  # field columns per event, in table order
        self._typed: dict[str, pd.DataFrame] = {}
        self._fields: dict[str, tuple[np.ndarray, pd.DataFrame]] = {}  # (events-table rows, fields)
        self._names: list[str] | None = None
        self._by_seq: dict[str, SeqIndex] = {}  # for rows(): cached fields' rows by seq
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
        return self._binary is not None or self._reopen is not None

    def _records(self) -> object:
        if self._binary is None and self._reopen is not None:
            from .readers import read

            self._binary = read(self._reopen).binary  # seq is the record index in a full read
        return self._binary

    def event_names(self) -> list[str]:
        """Event types present, most frequent first (counted once per Trace)."""
        if self._names is None:
            vc = self.event_cpu_counts().groupby(level=0, observed=True).sum().sort_values(ascending=False, kind="stable")
            self._names = [str(n) for n, c in vc.items() if c > 0]
        return self._names

    def event_cpu_counts(self) -> pd.Series:
        """Events per (event, cpu): of the whole trace, also when the events were streamed."""
        if self._counts is None:
            self._counts = self.events.groupby(["event", "cpu"], observed=True).size()
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
        if name in self._typed:
            full = self._typed[name]
            return full if columns is None else full[[*_BASE, *(c for c in columns if c in full.columns)]]
        key = name if columns is None or self.has_binary else f"{name}\0{','.join(sorted(columns))}"
        if key not in self._typed:
            rows = self.events[self.events["event"] == name]
            if name in self._cached:
                fields = self._cached[name].drop(columns="seq")
                base = rows[_BASE].reset_index(drop=True)
                self._typed[key] = pd.concat([base, fields], axis=1) if len(fields.columns) else base
            elif "payload" not in self.events.columns and not self.has_binary:
                raise MissingEventsError(f"{name}: its fields were not kept by the selective load ({self.meta.selection})")
            elif self.has_binary:
                from .fields.binary import decode_binary

                self._typed[key] = decode_binary(name, rows, self._records())  # type: ignore[arg-type]
            else:
                self._typed[key] = decode_event(name, rows, None if columns is None else tuple(columns))
        out = self._typed[key]
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
        key = f"{name}\0fields\0{','.join(sorted(columns))}"
        if key not in self._fields:
            rows = np.flatnonzero((self.events["event"] == name).to_numpy(bool))
            known = self._cached.get(name, self._typed.get(name))
            if known is not None:
                got = known[[c for c in columns if c in known.columns]]
            elif "payload" not in self.events.columns and not self.has_binary:
                got = pd.DataFrame(index=range(len(rows)))  # not kept by a selective load: no fields
            elif self.has_binary:
                from .fields.binary import binary_fields

                got = binary_fields(name, self.events["seq"].to_numpy(np.int64)[rows], self._records(),  # type: ignore[arg-type]
                                    tuple(columns))
            else:
                got = decode_fields(name, self.events["payload"].array[rows], tuple(columns))
            self._fields[key] = (rows, got)
        rows, got = self._fields[key]
        out = pd.DataFrame({c: self.events[c].to_numpy()[rows] for c in ("seq", *base)})
        for c in columns:
            if c in got.columns:
                out[c] = got[c].array
        return out

    def without(self, *names: str) -> "Trace":
        """The same trace as if events ``names`` had not been recorded (keeps seq numbers).

        Answers "what could be decided without preemptirq/rcu events?" on a real trace.
        """
        keep = ~self.events["event"].astype(object).isin(names)
        out = Trace(self.events[keep.to_numpy()], self.meta, self._binary, self._reopen)
        out._typed = {k: v for k, v in self._typed.items() if "\0" not in k and k not in names}
        return out

    def rows(self, rows: np.ndarray) -> "Trace":
        """The events at table ``rows`` (ascending) as a trace of their own: one chunk of a huge trace.

        It keeps the whole trace's seq numbers, meta and event names (so analyzers decide
        what is missing from the whole trace, not from the chunk), and the fields already
        decoded for those rows.
        """
        rows = np.asarray(rows, dtype=np.int64)
        out = Trace(self.events.iloc[rows].reset_index(drop=True), self.meta, self._binary, self._reopen)
        if self._reopen is not None and self._binary is None:  # a cached trace.dat is re-read once, not per chunk
            out._records = self._records  # type: ignore[method-assign]
        out._names = self.event_names()
        for name, f in self._cached.items():
            if name not in self._by_seq:  # the cached fields' rows by seq, once per trace
                self._by_seq[name] = SeqIndex(f["seq"].to_numpy(np.int64), np.arange(len(f)))
            want = out.events["seq"].to_numpy(np.int64)[(out.events["event"] == name).to_numpy(bool)]
            out._cached[name] = f.iloc[self._by_seq[name][want]].reset_index(drop=True)
        for key, (have, got) in self._fields.items():
            i = np.minimum(np.searchsorted(rows, have), max(len(rows) - 1, 0))
            keep = (rows[i] == have) if len(rows) else np.zeros(len(have), bool)
            out._fields[key] = (i[keep], got[keep].reset_index(drop=True))
        return out

    def joined(self, after: "Trace") -> "Trace":
        """These events, then the events of ``after`` (a later piece of the same stream), as one trace
        with both pieces' decoded fields; meta and event names are ``after``'s."""
        out = Trace(concat([self.events, after.events]), after.meta)
        for name in set(self._cached) | set(after._cached):
            out._cached[name] = concat([self._cached.get(name), after._cached.get(name)])
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
        t = pd.crosstab(ev["event"].astype(str), ev["cpu"])
        t["total"] = t.sum(axis=1)
        return t.sort_values("total", ascending=False)

    def __repr__(self) -> str:
        m = self.meta
        return (f"<Trace {self.name}: {m.events} events, {m.source_format}, cpus={m.cpus}, "
                f"skipped={m.skipped_total}, lost={m.lost_total}>")
