"""Many traces at once: per-trace work in parallel, one row per trace.

CI labs collect thousands of traces; each is loaded and analyzed on its own, so
they spread over worker processes: a local process pool by default, or an existing
dask.distributed cluster (``scheduler="tcp://host:port"`` or the
``DASK_SCHEDULER_ADDRESS`` environment variable). A trace that fails becomes an
``error`` in its row; the batch goes on.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import progress
from .analyzers import FINDING_KINDS, Options, load_and_analyze
from .analyzers.analysis import SameBuffers
from .errors import OutputError, TraceError

if TYPE_CHECKING:
    from .compare.sides import Part

ROW_COLUMNS = ["path", "format", "events", "cpus", "duration_s", "lost", "skipped", "verdict", "guest_runs",
               *(f"{k}_{c}" for k in FINDING_KINDS for c in ("proven", "inferred")), "undecidable", "cache",
               "seconds", "error", "fingerprint", "kernel_release", "same_buffer_as"]


def mark_same_buffers(rows: list[dict[str, Any]]) -> list[str]:
    """Set ``same_buffer_as`` on each row whose buffer an earlier row already holds (in another
    format: ``SameBuffers``); return a warning per such row."""
    seen = SameBuffers()
    warnings = []
    for r in rows:
        fp = r.get("fingerprint")
        if fp is None or r.get("error"):
            continue
        earlier = seen.earlier(fp, r.get("kernel_release"), r["path"])
        if earlier is not None:
            r["same_buffer_as"] = earlier
            warnings.append(f"{r['path']} holds the same events as {earlier} (another format of one buffer): counted once")
    return warnings


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
           "cache": m.cache, "seconds": round(time.perf_counter() - t0, 3), "error": None,
           "fingerprint": a.fingerprint, "kernel_release": a.kernel_release, "same_buffer_as": None}
    for k in FINDING_KINDS:
        row[f"{k}_proven"], row[f"{k}_inferred"] = c[k]["proven"], c[k]["inferred"]
    return row


def compare_part(path: str, options: Options | None = None, cache: bool = False, cache_dir: str | None = None
                 ) -> "Part":
    """Load and analyze one trace for ``compare``: the small Part a worker sends back."""
    from .compare import extract

    return extract(load_and_analyze(path, options, cache, cache_dir))


def scheduler_address(scheduler: str | None) -> str | None:
    """The cluster to use: the argument, else ``DASK_SCHEDULER_ADDRESS``, else None (embedded)."""
    return scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None


class Each(list):
    """An argument of ``run`` given per path (one value for each, in the order of the paths)."""


def run(fn: Callable[..., Any], paths: Sequence[str], *args: Any, scheduler: str | None = None,
        workers: int | None = None, serial: bool = False) -> list[Any]:
    """``fn(path, *args)`` for every path, results in the order of ``paths``; an ``Each`` argument
    gives each path its own value.

    On a dask.distributed cluster when one is named (``scheduler`` or ``DASK_SCHEDULER_ADDRESS``);
    else in a local process pool of ``workers`` (default: the cores), no larger than the batch;
    in this process for ``serial``, one or two traces, or one worker. A pool's workers are forked
    from this process, so they start with its imports and cost milliseconds, not a cluster's
    seconds. A result that cannot come back (a worker died) is re-raised for ``fn`` that does not
    catch its own errors, and becomes an error row for ``summarize``.
    """
    address = scheduler_address(scheduler)
    per_path = [[a[i] if isinstance(a, Each) else a for a in args] for i in range(len(paths))]
    if address:
        return _on_cluster(fn, paths, per_path, address)
    n = min(workers or os.cpu_count() or 1, len(paths))
    if serial or n <= 1 or len(paths) <= 2:
        return _collect(fn, paths, ((i, fn(p, *per_path[i])) for i, p in enumerate(paths)))
    return _on_pool(fn, paths, per_path, n)


def _collect(fn: Callable[..., Any], paths: Sequence[str], done: Any) -> list[Any]:
    """Results in path order from ``(index, result)`` pairs as they finish, with progress."""
    stage = f"{len(paths)} traces"
    out: list[Any] = [None] * len(paths)
    progress.step(stage, 0.0)
    for k, (i, result) in enumerate(done, 1):
        out[i] = result
        progress.step(stage, k / len(paths))
    return out


def _outcome(fn: Callable[..., Any], path: str, get: Callable[[], Any]) -> Any:
    try:
        return get()
    except Exception as exc:  # noqa: BLE001
        if fn is not summarize:
            raise
        return _error_row(path, exc, time.perf_counter())


def _on_pool(fn: Callable[..., Any], paths: Sequence[str], per_path: list[list[Any]], n: int) -> list[Any]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context(method)) as pool:
        futures = {pool.submit(fn, p, *per_path[i]): i for i, p in enumerate(paths)}
        return _collect(fn, paths, ((futures[f], _outcome(fn, paths[futures[f]], f.result)) for f in as_completed(futures)))


def _on_cluster(fn: Callable[..., Any], paths: Sequence[str], per_path: list[list[Any]], address: str) -> list[Any]:
    from dask.distributed import Client, as_completed

    logging.getLogger("distributed").setLevel(logging.ERROR)  # the CLI's stderr is for our one-line messages
    with Client(address) as client:
        futures = [client.submit(fn, p, *per_path[i], pure=False) for i, p in enumerate(paths)]
        index = {f.key: i for i, f in enumerate(futures)}
        return _collect(fn, paths, ((index[f.key], _outcome(fn, paths[index[f.key]], f.result)) for f in as_completed(futures)))


def analyze_many(paths: Sequence[str], options: Options | None = None, scheduler: str | None = None,
                 workers: int | None = None, serial: bool = False, cache: bool = False,
                 cache_dir: str | None = None) -> pd.DataFrame:
    """One row per trace (ROW_COLUMNS): format, size, verdict, findings, errors; a trace that holds
    the same buffer as an earlier one names it in ``same_buffer_as`` (``t.attrs["warnings"]``)."""
    rows = run(summarize, paths, options, cache, cache_dir, scheduler=scheduler, workers=workers, serial=serial)
    warnings = mark_same_buffers(rows)
    t = pd.DataFrame(rows, columns=ROW_COLUMNS)
    t.attrs["warnings"] = warnings
    counts = ["events", "cpus", "lost", "skipped", "guest_runs", *(c for c in ROW_COLUMNS if c.endswith(("_proven", "_inferred")))]
    return t.astype({c: "Int64" for c in counts})  # integers, NA in a failed trace's row
