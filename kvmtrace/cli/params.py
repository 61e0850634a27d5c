"""Option values parsed the way trace-cmd users write them; click only, so `--help` stays light."""
from __future__ import annotations

from typing import Any

import click


def cpu_list(_ctx: Any, _param: Any, value: str | None) -> tuple[int, ...] | None:
    """``--cpu 0,2-3`` → (0, 2, 3), as ``trace-cmd report --cpu`` reads it."""
    if value is None:
        return None
    out: set[int] = set()
    try:
        for part in value.split(","):
            lo, _, hi = part.strip().partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise click.BadParameter(f"{value!r}: a CPU list is numbers and ranges, e.g. 0,2-3") from None
    return tuple(sorted(out))


def seconds_ns(seconds: float | None) -> int | None:
    """``--start``/``--end`` seconds as the trace's integer nanoseconds."""
    return None if seconds is None else round(seconds * 1e9)


#: the events a command looks at: CPUs and a time window, in the trace's own timestamps
WINDOW = [
    click.option("--cpu", callback=cpu_list, metavar="LIST", help="Only these CPUs, e.g. 1 or 0,2-3."),
    click.option("--start", type=float, metavar="S",
                 help="Only events at or after S seconds (the timestamps trace-cmd report prints)."),
    click.option("--end", type=float, metavar="S", help="Only events at or before S seconds."),
]


#: where the Parquet cache is: every command that reads or shows it takes this one option
CACHE_DIR = click.option("--cache-dir", metavar="DIR", envvar="KVMTRACE_CACHE_DIR",
                         help="Cache folder (default: $KVMTRACE_CACHE_DIR, else ~/.cache/kvmtrace).")


def window(fn: Any) -> Any:
    """The ``WINDOW`` options on a command."""
    for opt in reversed(WINDOW):
        fn = opt(fn)
    return fn
