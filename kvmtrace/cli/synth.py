"""``kvmtrace synth``: write a synthetic KVM trace with its ground truth."""
from __future__ import annotations

import click

from ..synth import FORMATS, Scenario, synth as run_synth
from .contract import one_line_errors


def _cpus(value: str) -> tuple[int, ...]:
    if not value.strip():
        return ()
    try:
        return tuple(int(x) for x in value.split(","))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: want a comma-separated CPU list like 1,2") from exc


def _kernel(value: str) -> tuple[int, int]:
    try:
        major, minor = value.split(".")[:2]
        return int(major), int(minor)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: want a version like 6.1") from exc


@click.command()
@click.option("--arch", type=click.Choice(["arm64", "x86"]), default="arm64", show_default=True,
              help="Host architecture: arm64 (kvm_arch_vcpu_ioctl_run) or x86 (VMX before 5.17, SVM after).")
@click.option("--entry", type=click.Choice(["pre-fix", "fixed"]), default="pre-fix", show_default=True,
              help="Guest entry logic: before or after 'kvm/arm64: rework guest entry logic' (5.17).")
@click.option("--kernel", default="6.1", show_default=True, help="Kernel version: selects flag columns, "
              "rcu_dyntick/rcu_watching, tick function, PC width, and that release's paths (arm64 5.17: the isb() "
              "window after every exit; x86 5.10/5.12: guest timing ends before the host-IRQ window).")
@click.option("--vcpus", default="1", show_default=True, help="CPUs running one vCPU thread each.")
@click.option("--nohz-full", default="1", show_default=True, help="vCPU CPUs with nohz_full (empty: none).")
@click.option("--duration-ms", type=click.IntRange(1), default=200, show_default=True,
              help="Traced time to simulate, in milliseconds.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Random seed: the same seed gives the same bytes.")
@click.option("--no-preemptirq", is_flag=True, help="As if preemptirq events were not recorded.")
@click.option("--no-rcu", is_flag=True, help="As if rcu_dyntick/rcu_watching were not recorded.")
@click.option("--late-share", type=float, default=0.3, show_default=True,
              help="Pre-fix arm64: share of IRQ exits whose pending IRQ is taken after guest_exit (no ISB).")
@click.option("--lost-gap", is_flag=True, help="Drop 2 ms of one vCPU CPU's events, marked as lost.")
@click.option("--format", "formats", multiple=True, type=click.Choice(sorted(FORMATS)),
              default=("tracefs", "report-tl"), show_default=True,
              help="Output formats (repeat): the kernel's text, trace-cmd report variants, perf script, trace.dat v6/v7.")
@click.option("-o", "--output", "--out", "out", default=".", show_default=True, metavar="DIR",
              help="Output directory.")
@click.option("--name", default=None, help="Base file name (default from the scenario).")
@one_line_errors
def synth(arch: str, entry: str, kernel: str, vcpus: str, nohz_full: str, duration_ms: int, seed: int,
          no_preemptirq: bool, no_rcu: bool, late_share: float, lost_gap: bool, formats: tuple[str, ...],
          out: str, name: str | None) -> None:
    """Simulate the host side of KVM guest entry/exit and write the trace a real kernel would write.

    Writes each --format and NAME.truth.json (every injected bug instance with the
    seq of its events, guest runs, expected and charged guest ticks). The traces
    are synthetic: the ground truth says so.
    """
    vc = _cpus(vcpus)
    sc = Scenario(arch=arch, fixed=entry == "fixed", kernel=_kernel(kernel), vcpu_cpus=vc,
                  nohz_full=tuple(c for c in _cpus(nohz_full) if c in vc),
                  housekeeping_cpus=(0,) if 0 not in vc else (max(vc) + 1,),
                  duration_ns=duration_ms * 1_000_000, seed=seed, preemptirq=not no_preemptirq, rcu=not no_rcu,
                  late_irq_share=late_share, lost_gap=lost_gap)
    r = run_synth(sc, out, name, tuple(formats))
    click.echo(f"{r['events']:,} events, {r['runs']:,} guest runs, entry logic {r['entry_logic']} (synthetic)")
    for k, v in r["counts"].items():
        click.echo(f"  injected {k}: {v:,}")
    for p in r["paths"].values():
        click.echo(p)
    click.echo(r["truth"])
