"""``kvmtrace report TRACE [--vs BASELINE] -o DIR``: Markdown and figures for a pull request."""
from __future__ import annotations

import sys

import click

from ..analyzers import Options, load_and_analyze
from ..compare import DEFAULT_ALPHA
from ..report import write_report
from .inputs import analysis_options, cache_options
from .contract import one_line_errors
from .progress import terminal_progress


@click.command()
@click.argument("trace")
@click.option("--vs", "baseline", metavar="BASELINE", help="Compare with this trace of the kernel before the change.")
@click.option("-o", "--output", "out_dir", required=True, metavar="DIR",
              help="Folder to write report.md and its PNG/SVG figures into (created if missing).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=DEFAULT_ALPHA,
              show_default=True, help="Significance level of the comparison's tests.")
@click.option("--findings", "show", type=click.IntRange(0), default=15, show_default=True,
              help="Findings to list in report.md.")
@analysis_options
@cache_options
@one_line_errors
def report(trace: str, baseline: str | None, out_dir: str, alpha: float, show: int, options: Options,
           no_cache: bool, cache_dir: str | None) -> None:
    """Write a pull-request-ready report on TRACE into DIR.

    \b
    DIR/report.md holds GitHub-flavoured tables and relative links to the
    figures beside it (PNG to view, SVG to zoom): a per-CPU timeline zoomed on
    the worst irqs-off window, the irqs-off duration CDF, host handling per exit
    reason and misaccounted ticks per CPU. With --vs BASELINE the report adds the
    before/after comparison, BASELINE being the kernel before the change.
    """
    with terminal_progress():
        a = load_and_analyze(trace, options, not no_cache, cache_dir)
        b = load_and_analyze(baseline, options, not no_cache, cache_dir) if baseline else None
    paths = write_report(a, out_dir, baseline=b, alpha=alpha, argv=["kvmtrace", *sys.argv[1:]], findings=show)
    click.echo(f"wrote {paths[0]} and {len(paths) - 1} figure files")
