"""Trace arguments: a file, a folder of traces, a glob, or several of them joined by commas."""
from __future__ import annotations

import functools
import glob
import os
from collections.abc import Callable
from typing import Any

import click

from ..analyzers import LOW_MEMORY_CHUNK, Options
from ..errors import TraceFormatError
from ..readers import trace_kind
from .params import CACHE_DIR, WINDOW, seconds_ns

#: files in a folder that are never traces, skipped without sniffing
_NOT_TRACES = (".json", ".md", ".sh", ".py", ".png", ".svg", ".parquet", ".ipynb")


def expand(arg: str, skipped: list[dict[str, str]] | None = None) -> list[str]:
    """The trace files ``arg`` names, in a stable order; a one-line error if it names none.

    A folder or a glob keeps only what reads as a trace (``readers.trace_kind``); each file left out
    is added to ``skipped`` with the reason. A file named on its own is always tried (its reader
    says what is wrong with it).
    """
    out: list[str] = []
    for part in (p for p in arg.split(",") if p):
        if os.path.isdir(part):
            names = [os.path.join(part, f) for f in sorted(os.listdir(part)) if not f.startswith(".")]
        elif any(c in part for c in "*?[") and not os.path.exists(part):
            names = sorted(glob.glob(part))
            if not names:
                raise TraceFormatError(part, None, "pattern matches no files")
        else:
            out.append(part)  # a missing file is reported by the reader, with its name
            continue
        found = []
        for name in names:
            why = "not a trace (by its name)" if name.endswith(_NOT_TRACES) else trace_kind(name)
            if why is None:
                found.append(name)
            elif skipped is not None:
                skipped.append({"path": name, "why": why})
        if not found:
            raise TraceFormatError(part, None, f"holds no trace files ({len(names)} checked)")
        out += found
    if not out:
        raise TraceFormatError(arg, None, "names no trace")
    return out


def say_skipped(skipped: list[dict[str, str]]) -> None:
    """One stderr line listing what a folder or glob held that is not a trace, and why."""
    if skipped:
        click.echo(f"kvmtrace: skipped {len(skipped)} file(s) that are not traces: "
                   + "; ".join(f"{os.path.basename(s['path'])} ({s['why']})" for s in skipped), err=True)


def is_many(arg: str) -> bool:
    """Whether ``arg`` names a batch (folder, glob, comma list) rather than one file."""
    return "," in arg or os.path.isdir(arg) or (any(c in arg for c in "*?[") and not os.path.exists(arg))


def _with(fn: Callable[..., Any], options: list[Callable[..., Any]]) -> Callable[..., Any]:
    for opt in reversed(options):
        fn = opt(fn)
    return fn


_CLUSTER = [
    click.option("--scheduler", metavar="tcp://HOST:PORT", envvar="DASK_SCHEDULER_ADDRESS",
                 help="Run on this dask.distributed cluster (default: $DASK_SCHEDULER_ADDRESS, else a "
                      "local process pool)."),
    click.option("--workers", type=click.IntRange(1), default=None,
                 help="Local worker processes (default: the cores, at most one per trace)."),
    click.option("--serial", is_flag=True, help="Analyze the traces one after another in this process."),
]
_CACHE = [
    click.option("--no-cache", is_flag=True, help="Neither read nor write the Parquet cache."),
    CACHE_DIR,
]


def cache_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The Parquet cache options (``no_cache``, ``cache_dir``)."""
    return _with(fn, _CACHE)


def batch_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options of commands that read many traces: where to run them and the Parquet cache."""
    return _with(fn, _CLUSTER + _CACHE)


def analysis_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--irqsoff-threshold-us``, ``--low-memory``, ``--chunk-events`` and ``--kernel-release``,
    handed to the command as one ready ``options`` for loading and the analyzers."""
    @functools.wraps(fn)
    def command(*args: Any, irqsoff_threshold_us: float, low_memory: bool, chunk_events: int | None,
                kernel_release: str | None, cpu: tuple[int, ...] | None, start: float | None, end: float | None,
                **kw: Any) -> Any:
        return fn(*args, options=Options(irqsoff_threshold_ns=int(irqsoff_threshold_us * 1000), low_memory=low_memory,
                                         chunk_events=chunk_events, kernel_release=kernel_release,
                                         cpus=cpu, start_ns=seconds_ns(start), end_ns=seconds_ns(end)), **kw)
    return _with(command, WINDOW + [
        click.option("--irqsoff-threshold-us", type=float, default=100.0, show_default=True,
                     help="Irqs-off windows longer than this are counted per CPU."),
        click.option("--low-memory", is_flag=True,
                     help=f"Stream the trace: read it {LOW_MEMORY_CHUNK:,} events at a time straight into the "
                          "analysis, keeping only the fields the analyzers read (no cache). Chosen by itself "
                          "when a trace is too big for the memory available."),
        click.option("--chunk-events", type=click.IntRange(min=1000), metavar="N",
                     help="Build the model N events at a time (the same result, less memory); "
                          "with --low-memory, the size of the streamed pieces."),
        click.option("--kernel-release", metavar="R",
                     help="The traced kernel's release as `uname -r` printed it (overrides the trace.dat's UNAME). "
                          "x86 tick accounting depends on it: guest timing ends before the host-IRQ window "
                          "on 5.9 up to 5.12.8 / 5.10.41."),
    ])
