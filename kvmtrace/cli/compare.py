"""``kvmtrace compare BEFORE AFTER``: the before-kernel beside the after-kernel."""
from __future__ import annotations

import json
import sys
from dataclasses import replace

import click

from ..analyzers import Options
from ..batch import Each, compare_part, run
from ..compare import DEFAULT_ALPHA, compare as run_compare
from .inputs import analysis_options, batch_options, expand, say_skipped
from .contract import one_line_errors
from .progress import terminal_progress


@click.command()
@click.argument("before")
@click.argument("after")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (schema in the README).")
@click.option("--markdown", "as_markdown", is_flag=True, help="GitHub-flavoured Markdown for a pull request.")
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when any bug class regressed.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=DEFAULT_ALPHA,
              show_default=True, help="Significance level of every test.")
@click.option("--before-release", metavar="R",
              help="The BEFORE kernel's release where it differs from --kernel-release (which then is AFTER's).")
@analysis_options
@batch_options
@one_line_errors
def compare(before: str, after: str, as_json: bool, as_markdown: bool, fail_on_regression: bool, alpha: float,
            before_release: str | None, options: Options, scheduler: str | None, workers: int | None, serial: bool, no_cache: bool,
            cache_dir: str | None) -> None:
    """Compare a kernel BEFORE a change with the kernel AFTER it.

    \b
    BEFORE and AFTER are each a trace file, a folder of traces, a glob, or a
    comma-separated list; the traces of one side are pooled, and loaded and
    analyzed in parallel on dask.distributed. Per bug class the
    verdict is fixed, regressed, unchanged or undecidable, backed by Fisher's
    exact test on the rates; duration metrics get Mann-Whitney U (p50) and
    Kolmogorov-Smirnov (p99) tests. Exit status: 0, 1 with --fail-on-regression,
    2 on bad input.
    """
    if as_json and as_markdown:
        raise click.UsageError("choose one of --json and --markdown")
    skipped: list[dict[str, str]] = []
    paths = [expand(before, skipped), expand(after, skipped)]  # every name checked before the first slow load
    say_skipped(skipped)
    with terminal_progress():  # one trace per task: several traces go to dask.distributed workers
        first = replace(options, kernel_release=before_release) if before_release else options
        parts = run(compare_part, paths[0] + paths[1], Each([first] * len(paths[0]) + [options] * len(paths[1])),
                    not no_cache, cache_dir, scheduler=scheduler, workers=workers, serial=serial)
    c = run_compare(parts[:len(paths[0])], parts[len(paths[0]):], alpha=alpha)
    for w in c.warnings():
        click.echo(f"kvmtrace: warning: {w}", err=True)
    if as_json:
        click.echo(json.dumps(c.to_json(), indent=2, sort_keys=True))
    elif as_markdown:
        click.echo(c.to_markdown())
    else:
        click.echo(c.to_text())
    if fail_on_regression and c.regressed:
        click.echo(f"kvmtrace: regressed: {', '.join(c.regressed)}", err=True)
        sys.exit(1)
