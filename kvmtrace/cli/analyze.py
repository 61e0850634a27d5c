"""``kvmtrace analyze TRACE``: verdict, findings and per-analyzer tables."""
from __future__ import annotations

import json
import sys

import click
import numpy as np
import pandas as pd

from ..analyzers import FINDING_KINDS, Analysis, Confidence, Options, load_and_analyze, plain
from ..batch import analyze_many
from .inputs import analysis_options, batch_options, expand, is_many, say_skipped
from .contract import one_line_errors
from .progress import terminal_progress
from ..tables import render
from ..analyzers.ticks import TICK_HEADER, tick_rows

EXPLAIN = {
    "apparent_irqsoff": "an irqs-off window opened before kvm_entry spans the guest run: tracing and lockdep "
                        "were never told IRQs are on while the guest runs (bug 2)",
    "rcu_not_watching": "an IRQ handler ran while the vCPU thread's RCU extended quiescent state was still "
                        "active: RCU was not watching (bug 1)",
    "misaccounted_tick": "a tick that hit the guest (it caused the IRQ exit, or fell due while the guest ran) was "
                         "handled after guest timing ended, so it was charged to the host (bug 3)",
}


def _kinds(value: str | None) -> list[str]:
    if not value:
        return []
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    bad = [k for k in kinds if k not in FINDING_KINDS]
    if bad:
        raise click.BadParameter(f"unknown kind(s) {', '.join(bad)}; choose from {', '.join(FINDING_KINDS)}")
    return kinds


@click.command()
@click.argument("traces", nargs=-1, required=True, metavar="TRACE...")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (schema in the README).")
@click.option("--fail-on", "fail_on", metavar="KIND[,KIND]",
              help="Exit 1 when proven findings of these kinds exist: " + ", ".join(FINDING_KINDS) + ".")
@click.option("--strict", is_flag=True, help="With --fail-on, count inferred findings too.")
@analysis_options
@click.option("--findings", "show", type=int, default=10, show_default=True, help="Findings to list (text output).")
@batch_options
@one_line_errors
def analyze(traces: tuple[str, ...], as_json: bool, fail_on: str | None, strict: bool, options: Options,
            show: int, scheduler: str | None, workers: int | None, serial: bool, no_cache: bool,
            cache_dir: str | None) -> None:
    """Find guest entry/exit bugs in TRACE and say which path the kernel runs, per bug class.

    Several traces (files, folders, globs, comma lists) give one row per trace,
    analyzed in parallel on dask.distributed; a trace that fails is reported in
    its row (exit 2 at the end).

    \b
    Finding kinds:
      apparent_irqsoff   irqs-off window spanning the guest run (bug 2)
      rcu_not_watching   IRQ handled inside the guest's RCU quiescent state (bug 1)
      misaccounted_tick  tick charged to the wrong side of guest/host (bug 3)
    Each finding is `proven` (the events show it) or `inferred` (the events
    suggest it; the reason is given). Exit status: 0, 1 with --fail-on, 2 on bad input.
    """
    kinds = _kinds(fail_on)
    if len(traces) > 1 or is_many(traces[0]):
        skipped: list[dict[str, str]] = []
        paths = [p for t in traces for p in expand(t, skipped)]
        say_skipped(skipped)
        _many(paths, options, as_json, kinds, strict, scheduler, workers, serial, not no_cache, cache_dir, skipped)
        return
    with terminal_progress():
        a = load_and_analyze(traces[0], options, not no_cache, cache_dir)
    if as_json:
        click.echo(json.dumps(a.to_json(), indent=2, sort_keys=True))
    else:
        _print(a, show)
        for w in a.trace.meta.warnings:
            click.echo(f"kvmtrace: warning: {w}", err=True)
    if kinds:
        f = a.findings
        hits = f[f["kind"].isin(kinds) & (True if strict else f["confidence"] == Confidence.PROVEN)]
        if len(hits):
            click.echo(f"kvmtrace: {len(hits)} finding(s) of {', '.join(kinds)}", err=True)
            sys.exit(1)


def _many(paths: list[str], opts: Options, as_json: bool, kinds: list[str], strict: bool, scheduler: str | None,
          workers: int | None, serial: bool, cache: bool, cache_dir: str | None, skipped: list[dict[str, str]]) -> None:
    """Batch mode: one row per trace."""
    with terminal_progress():
        t = analyze_many(paths, opts, scheduler=scheduler, workers=workers, serial=serial, cache=cache,
                         cache_dir=cache_dir)
    if as_json:
        click.echo(json.dumps({"schema": 1, "traces": [plain(r) for r in t.to_dict(orient="records")],
                               "skipped": skipped}, indent=2, sort_keys=True))
    else:
        click.echo(render(["trace", "format", "events", "verdict", "guest runs", *(f"{k} proven" for k in FINDING_KINDS),
                           "same buffer as", "error"],
                          [[_cell(v) for v in (r.path, r.format, r.events, r.verdict, r.guest_runs, r.apparent_irqsoff_proven,
                                               r.rcu_not_watching_proven, r.misaccounted_tick_proven,
                                               r.same_buffer_as, r.error)] for r in t.itertuples()]))
    for w in t.attrs.get("warnings", []):
        click.echo(f"kvmtrace: warning: {w}", err=True)
    failed = t[t["error"].notna()]
    hits = 0
    for k in kinds:
        cols = [f"{k}_proven"] + ([f"{k}_inferred"] if strict else [])
        hits += int(t.loc[t["same_buffer_as"].isna(), cols].fillna(0).to_numpy().sum())  # a buffer counts once
    if len(failed):
        click.echo(f"kvmtrace: {len(failed)} of {len(t)} traces failed: "
                   + "; ".join(r.error if str(r.error).startswith(r.path) else f"{r.path}: {r.error}"
                               for r in failed.itertuples()), err=True)
        sys.exit(2)
    if hits:
        click.echo(f"kvmtrace: {hits} finding(s) of {', '.join(kinds)}", err=True)
        sys.exit(1)


def _cell(v: object) -> object:
    """A batch table cell: NA as blank, numpy and pandas integers as ints (thousands separators)."""
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    return int(v) if isinstance(v, np.integer) else v


def _print(a: Analysis, show: int) -> None:
    m = a.trace.meta
    click.echo(f"{a.trace.path}: {m.source_format}, {m.events_text()}, cpus {m.cpus}"
               + (f", LOST {m.lost_total:,} events" if m.lost_markers else "")
               + (f", skipped {m.skipped_total:,} lines" if m.skipped_total else ""))
    click.echo(f"verdict: {a.verdict['verdict']}: {a.verdict['summary']}")
    click.echo(render(["bug class", "path", "evidence"],
                      [[k, c["verdict"], c["evidence"]] for k, c in a.verdict["classes"].items()]))
    c = a.counts()
    click.echo("")
    click.echo(render(["finding", "proven", "inferred"], [[k, c[k]["proven"], c[k]["inferred"]] for k in FINDING_KINDS]))
    for k in FINDING_KINDS:
        if c[k]["proven"] or c[k]["inferred"]:
            click.echo(f"  {k}: {EXPLAIN[k]}")
    ex = a.exits
    if ex.runs is not None and ex.reasons is not None:
        click.echo(f"\nguest runs: {len(ex.runs):,} on CPUs {ex.cpus} ({ex.vcpu_threads} vCPU thread(s), {ex.arch});"
                   f" unpaired: {ex.entries_without_exit} entries, {ex.exits_without_entry} exits,"
                   f" {ex.runs_broken_by_lost_events} broken by lost events")
        er = ex.reasons
        click.echo(render(["exit reason", "count", "share", "host p50 us", "p90", "p99", "max", "guest p50 us", "p99"],
                          [[r.reason, int(r.count), f"{r.share:.1%}", r.host_p50_us, r.host_p90_us, r.host_p99_us,
                            r.host_max_us, r.guest_p50_us, r.guest_p99_us] for r in er.itertuples()]))
    io = a.irqsoff
    if io.per_cpu is not None:
        click.echo(f"\nirqs-off windows (preemptirq), threshold {io.threshold_us:g} us:")
        click.echo(render(["cpu", "windows", "over threshold", "max us", "p99 us", "apparent", "apparent total us"],
                          [[int(r.cpu), int(r.windows), int(r.over_threshold), r.max_us, r.p99_us, int(r.apparent),
                            r.apparent_total_us] for r in io.per_cpu.itertuples()]))
        for caller, n in io.runs_in_guest_entry_windows.items():
            click.echo(f"  {n:,} guest runs inside a window opened in the guest entry by {caller} "
                       "(spans the guest, not the entry-logic bug)")
    rc = a.rcu
    if rc.source:
        click.echo(f"\nRCU ({rc.source}): {rc.guest_quiescent_states:,} guest quiescent states, {rc.handlers_in_guest_eqs:,} "
                   f"IRQ handlers and {rc.softirqs_in_guest_eqs:,} softirqs inside them; "
                   f"{rc.handlers_in_idle_eqs_legitimate:,} IRQs from idle (legitimate); "
                   f"{rc.missed_transitions} missed transitions (counter step {rc.counter_step})")
    if rc.nohz_full_cpus:
        click.echo("  nohz_full CPUs: " + "; ".join(f"{c} ({w})" for c, w in rc.nohz_full_cpus.items()))
    tk = a.ticks
    if tk.per_cpu is not None:
        click.echo(f"\nticks on vCPU CPUs (period {tk.tick_period_ns / 1e6:g} ms, trace clock − monotonic "
                   f"{tk.clock_offset_ns:,} ns ± {tk.due_uncertainty_ns:,}):")
        click.echo(render(TICK_HEADER, tick_rows(tk.per_cpu)))
        click.echo(f"  guest timing: {tk.path}: {tk.path_evidence}")
        if tk.host_time_charged_to_guest:
            click.echo("  host time charged to the guest by design (ticks due after the guest left), per exit: "
                       + ", ".join(f"{k} {v:,}" for k, v in tk.host_time_charged_to_guest_by_exit.items()))
    for u in a.undecidable:
        missing = f"; missing {', '.join(u['missing'])}" if u["missing"] else ""
        click.echo(f"\nundecidable: {u['what']}{missing}\n  {'capture with' if u['record'].startswith('trace-cmd') else 'needs'}: "
                   f"{u['record']}")
    if show and len(a.findings):
        click.echo(f"\nfirst {min(show, len(a.findings))} of {len(a.findings):,} findings (evidence = event seq numbers):")
        for r in a.findings.head(show).itertuples():
            why = f" [{r.why}]" if r.why else ""
            click.echo(f"  {r.kind} {r.confidence} cpu{r.cpu} pid {r.pid} {r.start_ns / 1e9:.6f}..{r.end_ns / 1e9:.6f} s "
                       f"seq {list(r.evidence_seq)}: {r.detail}{why}")
