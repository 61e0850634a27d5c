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
