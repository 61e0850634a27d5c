"""``report``: a Markdown document and its PNG/SVG figures, ready to paste into a pull request.

Everything is written inside one output folder under fixed file names; nothing
from the trace (names, comm strings) ever becomes part of a path.
"""
from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from .. import plot
from ..analyzers import Analysis
from ..compare import DEFAULT_ALPHA, compare
from ..errors import OutputError
from .document import document

REPORT_NAME = "report.md"


def _inside(out: Path, name: str) -> Path:
    """``out/name``, refusing anything that would land outside ``out`` (.., absolute, symlinks)."""
    if os.sep in name or (os.altsep and os.altsep in name) or name in ("", ".", ".."):
        raise OutputError(f"{out}: refusing file name {name!r}")
    p = out / name
    if p.is_symlink() or not p.resolve().is_relative_to(out.resolve()):
        raise OutputError(f"{p}: refusing to write through a link out of the report folder")
    return p


def _save(fig: Figure, out: Path, name: str) -> list[Path]:
    paths = [_inside(out, f"{name}.png"), _inside(out, f"{name}.svg")]
    fig.savefig(paths[0], dpi=fig.dpi)
    fig.savefig(paths[1])
    return paths


def write_report(a: Analysis, out_dir: str | os.PathLike[str], baseline: Analysis | None = None,
                 alpha: float = DEFAULT_ALPHA, argv: list[str] | None = None, findings: int = 15) -> list[Path]:
    """Write ``report.md`` and its figures for ``a`` (compared with ``baseline``, the before-kernel,
    when given) into ``out_dir``; return every path written, the Markdown first."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    sides = {"before": baseline, "after": a} if baseline is not None else {"trace": a}
    w = plot.worst_window(a)
    captions = {
        "timeline": f"{os.path.basename(a.trace.path)}, CPU rows zoomed on the {w.why} "
                    f"(at {w.start / 1e9:.6f} s): guest running, irqs-off windows (red: apparent, spanning the guest), "
                    "RCU quiescent state, IRQ handlers, ticks (stars: misaccounted)",
        "irqsoff-cdf": "irqs-off window durations as a CDF on a log axis; dashed: apparent windows that span a guest run",
        "exit-handling": "host handling time (kvm_exit → next kvm_entry) per exit reason, boxes p25–p75, whiskers p5–p95",
        "ticks-per-cpu": "ticks charged to the wrong side, per vCPU CPU, with the CPU's ticks",
    }
    figs: dict[str, Figure] = {"timeline": plot.timeline(a), "irqsoff-cdf": plot.irqsoff_cdf(sides),
                               "exit-handling": plot.exit_handling(sides), "ticks-per-cpu": plot.ticks_per_cpu(sides)}
    if baseline is not None:
        wb = plot.worst_window(baseline)
        figs["timeline-baseline"] = plot.timeline(baseline)
        captions["timeline-baseline"] = f"the baseline {os.path.basename(baseline.trace.path)}, zoomed on its {wb.why}"
    from ..plot.evidence import TITLES, present

    for kind in present(sides):
        figs[f"evidence-{kind}"] = plot.evidence(sides, kind)
        captions[f"evidence-{kind}"] = (f"{TITLES[kind]}: " + (
            "the before-kernel's first proven finding above the after-kernel's run of the same kind"
            if baseline is not None else "the trace's first proven finding") + ", every row on one time scale")
    written: list[Path] = []
    for name, fig in figs.items():
        written += _save(fig, out, name)
    cmp = compare(baseline, a, alpha=alpha) if baseline is not None else None
    md = _inside(out, REPORT_NAME)
    md.write_text(document(a, captions, cmp, baseline, argv or ["kvmtrace", "report", a.trace.path], findings),
                  encoding="utf-8")
    return [md, *written]
