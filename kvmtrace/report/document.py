"""The Markdown text of a report: what a reviewer reads in the pull request, figures linked by name."""
from __future__ import annotations

import os
import shlex
from typing import Any

from ..version import __version__
from ..analyzers import FINDING_KINDS, Analysis
from ..analyzers.ticks import TICK_HEADER, tick_rows
from ..compare import Comparison
from ..tables import markdown

MEANING = {
    "apparent_irqsoff": "irqs-off window opened before kvm_entry spans the guest run (tracing/lockdep never told IRQs are on)",
    "rcu_not_watching": "IRQ handled inside the vCPU thread's RCU extended quiescent state",
    "misaccounted_tick": "tick charged to the wrong side of guest/host time",
}


def _figure(name: str, alt: str, caption: str) -> list[str]:
    return [f"![{alt}]({name}.png)", "", f"*{caption}* ([SVG]({name}.svg))", ""]


def _trace_line(a: Analysis) -> str:
    m = a.trace.meta
    span = (m.last_ns - m.first_ns) / 1e9 if m.first_ns is not None and m.last_ns is not None else 0.0
    extra = (f", **{m.lost_total:,} events lost**" if m.lost_markers else "") + \
            (f", {m.skipped_total:,} lines skipped" if m.skipped_total else "")
    return f"`{os.path.basename(m.path)}`: {m.source_format}, {m.events_text()} over {span:.3f} s, CPUs {m.cpus_seen}{extra}"


def _findings(a: Analysis) -> list[str]:
    c = a.counts()
    return [markdown(["finding", "proven", "inferred", "what it means"],
                     [[k, c[k]["proven"], c[k]["inferred"], MEANING[k]] for k in FINDING_KINDS]), ""]


def document(a: Analysis, figures: dict[str, str], cmp: Comparison | None, baseline: Analysis | None,
             argv: list[str], findings: int = 15) -> str:
    """The report for ``a`` (and its comparison with ``baseline``); ``figures`` maps figure name → caption."""
    out = [f"# kvmtrace report: {os.path.basename(a.trace.path)}", ""]
    out += [f"- Trace: {_trace_line(a)}"]
    if baseline is not None:
        out += [f"- Baseline (before): {_trace_line(baseline)}"]
    out += ["", f"**Verdict: {a.verdict['verdict']}** ({a.verdict['summary']})", ""]
    out += [markdown(["bug class", "path", "evidence"], [[k, c["verdict"], c["evidence"]]
                                                        for k, c in a.verdict["classes"].items()]), ""]
    out += ["## Findings", ""] + _findings(a)
    if cmp is not None:
        out += ["## Before vs after", "", cmp.to_markdown(), ""]
    shown = [n for n in figures if n.startswith("evidence-")]
    if shown:
        out += ["## The runs that prove each bug class", ""]
        for n in shown:
            out += _figure(n, f"proving run: {n.removeprefix('evidence-')}", figures[n])
    if "timeline" in figures:
        out += ["## Timeline", ""] + _figure("timeline", "per-CPU timeline", figures["timeline"])
    if "timeline-baseline" in figures:
        out += _figure("timeline-baseline", "per-CPU timeline of the baseline", figures["timeline-baseline"])
    out += ["## Irqs-off windows", ""]
    io = a.irqsoff
    if io.per_cpu is not None:
        out += [markdown(["CPU", "windows", f"over {io.threshold_us:g} µs", "max µs", "p99 µs", "apparent",
                          "apparent total µs"],
                         [[int(r.cpu), int(r.windows), int(r.over_threshold), float(r.max_us), float(r.p99_us),
                           int(r.apparent), float(r.apparent_total_us)] for r in io.per_cpu.itertuples()]), ""]
    out += _figure("irqsoff-cdf", "irqs-off duration CDF", figures["irqsoff-cdf"])
    out += ["## Exits", ""]
    er = a.exits.reasons
    if er is not None and len(er):
        out += [markdown(["exit reason", "count", "share", "host p50 µs", "p99 µs", "max µs", "guest p50 µs"],
                         [[r.reason, int(r.count), f"{r.share:.1%}", _f(r.host_p50_us), _f(r.host_p99_us),
                           _f(r.host_max_us), _f(r.guest_p50_us)] for r in er.itertuples()]), ""]
    out += _figure("exit-handling", "host handling per exit reason", figures["exit-handling"])
    out += ["## Guest ticks", ""]
    tk = a.ticks
    if tk.per_cpu is not None and len(tk.per_cpu):
        out += [markdown(TICK_HEADER, tick_rows(tk.per_cpu)), "", f"Guest timing: {tk.path}: {tk.path_evidence}", ""]
    out += _figure("ticks-per-cpu", "misaccounted ticks per CPU", figures["ticks-per-cpu"])
    if a.undecidable:
        out += ["## Could not decide", ""]
        out += [f"- {u['what']}" + (f" — missing {', '.join(u['missing'])}" if u["missing"] else "")
                + (f"; capture with `{u['record']}`" if u["record"].startswith("trace-cmd") else f"; needs {u['record']}")
                for u in a.undecidable] + [""]
    if len(a.findings) and findings:
        first = a.findings.head(findings)
        out += [f"## First {len(first)} of {len(a.findings):,} findings", "",
                markdown(["kind", "confidence", "CPU", "pid", "start s", "evidence seq", "detail"],
                         [[r.kind, r.confidence, int(r.cpu), int(r.pid), f"{r.start_ns / 1e9:.6f}",
                           " ".join(str(int(x)) for x in r.evidence_seq), r.detail] for r in first.itertuples()]), ""]
    out += ["---", f"Generated by kvmtrace {__version__}: `{' '.join(shlex.quote(x) for x in argv)}`", ""]
    return "\n".join(out)


def _f(v: Any) -> float | None:
    return None if v is None or v != v else float(v)
