"""Before-kernel beside after-kernel: every analyzer metric, its change, a test, a verdict per bug class.

``compare(before, after)`` takes analyses (or traces, or paths) for each side;
a side of several traces is pooled. The verdict per bug class is one of
``fixed``, ``regressed``, ``unchanged``, ``undecidable`` (see ``verdicts.decide``).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..analyzers import FINDING_KINDS, Analysis, Options, analyze, load_and_analyze, plain
from ..errors import CompareError
from ..tables import markdown, render
from ..trace import Trace
from . import metrics, verdicts
from .sides import Part, Side, extract, side
from .stats import format_p

SCHEMA_VERSION = 1
DEFAULT_ALPHA = 0.01
__all__ = ["Comparison", "compare", "extract", "Part", "DEFAULT_ALPHA"]


@dataclass
class Comparison:
    """The result of ``compare``: metric table, verdict per bug class, both sides."""

    before: Side
    after: Side
    alpha: float
    table: pd.DataFrame                 # metrics.COLUMNS
    verdicts: dict[str, dict[str, Any]]  # kind → verdicts.decide(...)

    @property
    def regressed(self) -> list[str]:
        return [k for k, v in self.verdicts.items() if v["verdict"] == verdicts.Change.REGRESSED]

    def significant(self) -> pd.DataFrame:
        """Rows whose difference passed their test."""
        return self.table[self.table["significant"].fillna(False).astype(bool).to_numpy()]

    def to_json(self) -> dict[str, Any]:
        """The ``compare --json`` schema (README, "compare --json")."""
        def sd(s: Side) -> dict[str, Any]:
            return {"traces": s.traces, "same_buffer": s.same_buffer, "entry_logic": s.entry_logic, "guest_runs": s.runs,
                    "ticks_on_vcpu_cpus": s.ticks, "proven": s.proven, "inferred": s.inferred,
                    "denominators": s.denominators, "traces_deciding": s.decided, "undecidable": s.undecidable}
        rows = plain(self.table.to_dict(orient="records"))
        return {"schema": SCHEMA_VERSION, "alpha": self.alpha, "before": sd(self.before), "after": sd(self.after),
                "verdicts": plain(self.verdicts),
                "metrics": rows, "regressed": self.regressed}

    def verdict_rows(self) -> list[list[Any]]:
        return [[k, v["verdict"], v["before"], v["after"], v["denominator"], format_p(v["p_value"]), v["why"]]
                for k, v in self.verdicts.items()]

    def metric_rows(self, only_significant: bool = False) -> list[list[Any]]:
        t = self.significant() if only_significant else self.table
        def v(x: Any, count: bool = False) -> Any:
            return None if pd.isna(x) else int(x) if count else x
        return [[r.group, r.metric if r.unit == "count" else f"{r.metric} ({r.unit})", v(r.before, r.unit == "count"),
                 v(r.after, r.unit == "count"), v(r.delta, r.unit == "count"),
                 None if pd.isna(r.relative) else f"{r.relative:+.1%}",
                 None if pd.isna(r.ci_low) else f"[{r.ci_low:,.3g}, {r.ci_high:,.3g}]", v(r.test) or "",
                 format_p(v(r.p_value)), format_p(v(r.p_holm)), "" if pd.isna(r.significant) else ("yes" if r.significant else "no")]
                for r in t.itertuples()]

    def warnings(self) -> list[str]:
        return [f"{label}: {p} holds the same events as {q} (another format of one buffer): counted once"
                for label, s in (("before", self.before), ("after", self.after)) for p, q in s.same_buffer.items()]

    def to_text(self) -> str:
        head = [f"before: {', '.join(self.before.traces)} (verdict {'/'.join(sorted(set(self.before.entry_logic)))})",
                f"after:  {', '.join(self.after.traces)} (verdict {'/'.join(sorted(set(self.after.entry_logic)))})", ""]
        v = render(["bug class", "verdict", "before", "after", "out of", "p", "why"], self.verdict_rows())
        m = render(METRIC_HEADER, self.metric_rows())
        return "\n".join(head) + v + f"\n\n{self._family()}:\n" + m

    def _family(self) -> str:
        return (f"metrics (two-sided tests, alpha {self.alpha:g}, Holm-corrected over the {self.table['p_value'].notna().sum()} "
                "tested rows; the bug-class verdicts above are Fisher tests, uncorrected; 95% bootstrap intervals of "
                "after − before for percentiles)")

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown, ready for a pull request."""
        b, a = self.before, self.after
        lines = [f"**Before:** {', '.join(f'`{p}`' for p in b.traces)} — verdict {'/'.join(sorted(set(b.entry_logic)))}, "
                 f"{b.runs:,} guest runs  ",
                 f"**After:** {', '.join(f'`{p}`' for p in a.traces)} — verdict {'/'.join(sorted(set(a.entry_logic)))}, "
                 f"{a.runs:,} guest runs", "",
                 markdown(["bug class", "verdict", "before", "after", "out of", "p", "why"], self.verdict_rows()), "",
                 f"<details><summary>All {self._family()}</summary>", "",
                 markdown(METRIC_HEADER, self.metric_rows()), "", "</details>"]
        return "\n".join(lines)


METRIC_HEADER = ["group", "metric", "before", "after", "delta", "change", "95% interval", "test", "p", "p (Holm)",
                 "significant"]


def _items(side_in: Sequence[Any], options: Options | None) -> list[Analysis | Part]:
    """Each item as an Analysis (or a batch's Part): a Trace analyzed, a path loaded and analyzed."""
    return [x if isinstance(x, (Analysis, Part)) else analyze(x, options) if isinstance(x, Trace)
            else load_and_analyze(os.fspath(x), options) for x in side_in]


def compare(before: Any, after: Any, alpha: float = DEFAULT_ALPHA, options: Options | None = None) -> Comparison:
    """Compare two kernels; each side an Analysis, Part, Trace or path, or a list of them (pooled)."""
    bl = _items(before if isinstance(before, (list, tuple)) else [before], options)
    al = _items(after if isinstance(after, (list, tuple)) else [after], options)
    if not bl or not al:
        raise CompareError("each side of a comparison needs at least one trace")
    b, a = side("before", bl), side("after", al)
    # typed columns (Float64, Int64, string, boolean), NA where a row has no value
    table = pd.DataFrame(metrics.rows(b, a, alpha), columns=metrics.COLUMNS).convert_dtypes()
    return Comparison(b, a, alpha, table, {k: verdicts.decide(k, b, a, alpha) for k in FINDING_KINDS})
