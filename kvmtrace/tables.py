"""Tables for people: aligned plain text for the terminal, GitHub Markdown for pull requests.

Values are formatted here, one way for each kind (ints with thousands separators, floats to three
places, None as a dash); ``tabulate`` lays them out, numbers right-aligned.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabulate import tabulate


def _numeric(rows: Sequence[Sequence[Any]], width: int) -> list[bool]:
    return [bool(rows) and all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool)
                               for r in rows if r[i] is not None) for i in range(width)]


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    """An aligned text table; numbers right-aligned with thousands separators."""
    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return str(v)
        if isinstance(v, int):
            return f"{v:,}"
        if isinstance(v, float):
            return f"{v:,.3f}"
        return str(v)

    align = ["right" if n else "left" for n in _numeric(rows, len(headers))]
    body = tabulate([[fmt(v) for v in r] for r in rows], headers=list(headers), tablefmt="simple",
                    disable_numparse=True, colalign=align or None)
    lines = [line.rstrip() for line in body.split("\n")]
    return "\n".join(([title] if title else []) + lines)


def markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned, pipes in text escaped)."""
    def fmt(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, bool):
            return str(v)
        if isinstance(v, int):
            return f"{v:,}"
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 1e3 else f"{v:,.0f}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    align = ["right" if n else "left" for n in _numeric(rows, len(headers))]
    return tabulate([[fmt(v) for v in r] for r in rows], headers=list(headers), tablefmt="pipe",
                    disable_numparse=True, colalign=align or None)
