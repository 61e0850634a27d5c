"""``kvmtrace events FILE``: what was loaded, per type and CPU, and what was skipped or lost."""
from __future__ import annotations

import json

import click

from .params import seconds_ns, window
from .contract import one_line_errors


def _ns(v: int | None) -> str:
    return "-" if v is None else f"{v / 1e9:.6f} s"


@click.command()
@click.argument("trace")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@window
@one_line_errors
def events(trace: str, as_json: bool, cpu: tuple[int, ...] | None, start: float | None, end: float | None) -> None:
    """Show what kvmtrace read from TRACE: format, events per type and CPU, skipped and lost."""
    from ..tables import render  # here, not above: `events --help` needs neither pandas nor the readers
    from ..loading import load

    tr = load(trace, decode_now={}).only(cpu, seconds_ns(start), seconds_ns(end))  # no fields: no records kept
    m = tr.meta
    counts = tr.counts()
    if as_json:
        per_type = {str(ev): {"total": int(row["total"]),
                              "per_cpu": {str(c): int(row[c]) for c in counts.columns if c != "total" and row[c]}}
                    for ev, row in counts.iterrows()}
        click.echo(json.dumps({"meta": m.to_dict(), "events": per_type}, indent=2, sort_keys=True))
        return
    click.echo(f"{tr.path}: {m.source_format}" + (f" ({m.compression})" if m.compression else ""))
    click.echo(f"  events {m.events:,}  cpus {m.cpus}  clock {m.clock}  flags {m.flag_width or 'none'}"
               f"  time {_ns(m.first_ns)} .. {_ns(m.last_ns)}")
    if cpu is not None or start is not None or end is not None:
        click.echo(f"  counted below: {len(tr.events):,} events (--cpu/--start/--end)")
    skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(m.skipped.items())) or "none"
    click.echo(f"  lines {m.lines:,}  skipped {m.skipped_total:,} ({skipped})")
    if m.lost_markers:
        click.echo(f"  LOST {m.lost_total:,} events at {m.lost_markers} markers: "
                   + ", ".join(f"cpu{c} {n:,}" for c, n in sorted(m.lost.items())))
    for ex in m.skipped_examples:
        click.echo(f"  skipped line {ex['line']} ({ex['reason']}): {ex['text']!r}")
    for w in m.warnings:
        click.echo(f"  warning: {w}", err=True)
    cpus = [c for c in counts.columns if c != "total"]
    rows = [[str(ev), *[int(row[c]) for c in cpus], int(row["total"])] for ev, row in counts.iterrows()]
    click.echo("")
    click.echo(render(["event", *[f"cpu{c}" for c in cpus], "total"], rows))
