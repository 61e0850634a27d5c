"""Many traces at once: per-trace work in parallel on dask.distributed, one row per trace.

CI labs collect thousands of traces; each is loaded and analyzed on its own, so
they spread over worker processes: an embedded ``LocalCluster`` on loopback by
default, or an existing cluster (``scheduler="tcp://host:port"`` or the
``DASK_SCHEDULER_ADDRESS`` environment variable). A trace that fails becomes an
``error`` in its row; the batch goes on.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from . import progress
from .analyzers import FINDING_KINDS, Options, load_and_analyze
from .errors import OutputError, TraceError

ROW_COLUMNS = ["path", "format", "events", "cpus", "duration_s", "lost", "skipped", "verdict", "guest_runs",
               *(f"{k}_{c}" for k in FINDING_KINDS for c in ("proven", "inferred")), "undecidable", "cache",
               "seconds", "error"]


def _error_row(path: str, exc: BaseException, t0: float) -> dict[str, Any]:
    msg = str(exc) if isinstance(exc, (TraceError, OutputError)) else f"{type(exc).__name__}: {exc}"
    return {**{c: None for c in ROW_COLUMNS}, "path": path, "seconds": round(time.perf_counter() - t0, 3),
            "error": msg.splitlines()[0] if msg else type(exc).__name__}


def summarize(path: str, options: Options | None = None, cache: bool = False,
              cache_dir: str | None = None) -> dict[str, Any]:
    """Load and analyze one trace; its row (errors included, never raised)."""
    t0 = time.perf_counter()
    try:
        a = load_and_analyze(path, options, cache, cache_dir)
        tr = a.trace
    except Exception as exc:  # noqa: BLE001 - a bad trace is a row, not the end of the batch
        return _error_row(path, exc, t0)
    m, c = tr.meta, a.counts()
    row = {"path": path, "format": m.source_format, "events": m.events_read, "cpus": len(m.cpus_seen),
           "duration_s": (m.last_ns - m.first_ns) / 1e9 if m.first_ns is not None and m.last_ns is not None else None,
           "lost": m.lost_total, "skipped": m.skipped_total, "verdict": a.verdict["verdict"], "guest_runs": len(a.runs),
           "undecidable": "; ".join(sorted({u["analysis"] for u in a.undecidable})) or None,
           "cache": m.kernel.get("cache"), "seconds": round(time.perf_counter() - t0, 3), "error": None}
    for k in FINDING_KINDS:
        row[f"{k}_proven"], row[f"{k}_inferred"] = c[k]["proven"], c[k]["inferred"]
    return row


def compare_part(path: str, options: Options | None = None, cache: bool = False, cache_dir: str | None = None):
    """Load and analyze one trace for ``compare``: the small Part a worker sends back."""
    from .compare import extract

    return extract(load_and_analyze(path, options, cache, cache_dir))


def scheduler_address(scheduler: str | None) -> str | None:
    """The cluster to use: the argument, else ``DASK_SCHEDULER_ADDRESS``, else None (embedded)."""
    return scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None


class Each(list):
    """An argument of ``run`` given per path (one value for each, in the order of the paths)."""


def run(fn: Callable[..., Any], paths: Sequence[str], *args: Any, scheduler: str | None = None,
        workers: int = 2, serial: bool = False) -> list[Any]:
    """``fn(path, *args)`` for every path, results in the order of ``paths``; an ``Each`` argument
    gives each path its own value.

    ``serial`` (or a single path) runs in this process. Otherwise on dask.distributed;
    a result that cannot come back (a worker died) is re-raised for ``fn`` that does
    not catch its own errors, and becomes an error row for ``summarize``.
    """
    stage = f"{len(paths)} traces"
    if serial or len(paths) <= 1:
        out = []
        for i, p in enumerate(paths):
            progress.step(stage, i / max(len(paths), 1))
            out.append(fn(p, *(a[i] if isinstance(a, Each) else a for a in args)))
        progress.step(stage, 1.0)
        return out
    from dask.distributed import Client, LocalCluster, as_completed

    logging.getLogger("distributed").setLevel(logging.ERROR)  # the CLI's stderr is for our one-line messages
    address = scheduler_address(scheduler)
    cluster = None if address else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                host="127.0.0.1", dashboard_address=None,
                                                silence_logs=logging.CRITICAL)  # failures come back as results
    try:
        with Client(address or cluster) as client:
            futures = client.map(fn, list(paths), *[list(a) if isinstance(a, Each) else [a] * len(paths) for a in args],
                                 pure=False)
            index = {f.key: i for i, f in enumerate(futures)}
            out: list[Any] = [None] * len(paths)
            for done, fut in enumerate(as_completed(futures), 1):
                i = index[fut.key]
                try:
                    out[i] = fut.result()
                except Exception as exc:  # noqa: BLE001
                    if fn is not summarize:
                        raise
                    out[i] = _error_row(paths[i], exc, time.perf_counter())
                progress.step(stage, done / len(paths))
            return out
    finally:
        if cluster is not None:
            cluster.close()


def analyze_many(paths: Sequence[str], options: Options | None = None, scheduler: str | None = None,
                 workers: int = 2, serial: bool = False, cache: bool = False,
                 cache_dir: str | None = None) -> pd.DataFrame:
    """One row per trace (ROW_COLUMNS): format, size, verdict, findings, errors."""
    rows = run(summarize, paths, options, cache, cache_dir, scheduler=scheduler, workers=workers, serial=serial)
    t = pd.DataFrame(rows, columns=ROW_COLUMNS)
    counts = ["events", "cpus", "lost", "skipped", "guest_runs", *(c for c in ROW_COLUMNS if c.endswith(("_proven", "_inferred")))]
    return t.astype({c: "Int64" for c in counts})  # integers, NA in a failed trace's row
