"""compare, report, plots and progress, on the shipped sample pairs and the real arm64 pairs."""
from __future__ import annotations

import functools
import io
import json
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

import kvmtrace
import kvmtrace.plot as kplot
from conftest import ARM64, SAMPLES, X86_SVM, reference
from kvmtrace import progress
from kvmtrace.cli.main import cli
from kvmtrace.cli.progress import Bar
from kvmtrace.compare import compare
from kvmtrace.report import write_report

PAIRS = [("arm64-6.1-synth-prefix-nohzfull", "arm64-6.1-synth-fixed-nohzfull"),
         ("arm64-6.1-synth-prefix-tick", "arm64-6.1-synth-fixed-tick"),
         ("x86-5.15-synth-prefix-tick", "x86-6.1-synth-fixed-tick")]
KINDS = ("apparent_irqsoff", "rcu_not_watching", "misaccounted_tick")


@functools.lru_cache(maxsize=None)
def analysis(path: str) -> kvmtrace.analyzers.Analysis:
    return kvmtrace.analyze(path)


def _main(*args: str):
    """The CLI in-process."""
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("before,after", PAIRS)
def test_compare_sample_pairs_fixes_every_injected_bug_with_analyze_numbers(before, after):
    b, a = analysis(str(SAMPLES / f"{before}.v7.dat")), analysis(str(SAMPLES / f"{after}.v7.dat"))
    truth = json.loads((SAMPLES / f"{before}.truth.json").read_text())["counts"]
    c = compare(b, a)
    for kind in KINDS:
        v = c.verdicts[kind]
        assert v["before"] == b.counts()[kind]["proven"] and v["after"] == a.counts()[kind]["proven"]
        if truth[kind]:
            assert v["verdict"] == "fixed", (kind, v)
            assert v["before"] == truth[kind] and v["p_value"] < c.alpha
        else:
            assert v["verdict"] in ("unchanged", "undecidable"), (kind, v)
    rows = c.table.set_index(["group", "metric"])
    assert rows.loc[("runs", "guest runs"), "before"] == len(b.runs)
    assert rows.loc[("irqsoff", "windows"), "after"] == a.results["irqsoff"].metrics.get("windows", 0)


@pytest.mark.parametrize("mode", ["nohzfull", "tick"])
def test_compare_real_arm64_pairs_match_the_reference_counts(mode):
    ref = reference()
    b, a = analysis(str(ARM64 / f"arm64-6.1-prefix-{mode}.dat")), analysis(str(ARM64 / f"arm64-6.1-fixed-{mode}.dat"))
    c = compare(b, a)
    for kind, col in (("rcu_not_watching", "bug1"), ("apparent_irqsoff", "bug2")):
        v = c.verdicts[kind]
        assert (v["before"], v["after"]) == (ref[f"prefix-{mode}"][col], ref[f"fixed-{mode}"][col])
        assert v["verdict"] == ("fixed" if ref[f"prefix-{mode}"][col] else "unchanged"), v
    assert c.before.entry_logic == ["pre-fix"] and c.after.entry_logic == ["fixed"]
    assert not c.regressed


def test_compare_x86_pre_5_13_tick_placement_against_stock_6_1():
    """The same 6.1 source with guest timing ended before the host-IRQ window (told by its release)
    against stock 6.1: bug 3 fixed, and the host time the stock kernel charges to the guest by design shown."""
    before, after = str(X86_SVM / "x86-6.1-prefixtick-tick.dat"), str(X86_SVM / "x86-6.1-tick.dat")
    r = _main("compare", before, after, "--before-release", "5.10.40", "--serial", "--json")
    assert r.exit_code == 0, r.output
    j = json.loads(r.stdout)
    v = j["verdicts"]["misaccounted_tick"]
    assert (v["before"], v["after"], v["verdict"]) == (199, 0, "fixed")
    rows = {m["metric"]: m for m in j["metrics"] if m["group"] == "ticks"}
    io = rows["host time charged to the guest after io exits per 1k ticks"]
    assert io["before"] == 0 and io["after"] == 1000 * 10 / 250
    same = json.loads(_main("compare", before, after, "--serial", "--json").stdout)  # its UNAME: 6.1.192
    assert same["verdicts"]["misaccounted_tick"]["before"] == 0


def test_compare_with_itself_is_unchanged_and_nothing_is_significant():
    a = analysis(str(ARM64 / "arm64-6.1-prefix-tick.dat"))
    c = compare(a, a)
    assert {v["verdict"] for v in c.verdicts.values()} == {"unchanged"}
    assert len(c.significant()) == 0
    tested = c.table[c.table["p_value"].notna()]
    assert len(tested) > 10 and (tested["p_value"] > 0.99).all()


def test_compare_a_regression_is_flagged_and_fails_ci():
    fixed, prefix = str(SAMPLES / "arm64-6.1-synth-fixed-tick.v7.dat"), str(SAMPLES / "arm64-6.1-synth-prefix-tick.v7.dat")
    r = _main("compare", fixed, prefix, "--json", "--fail-on-regression")
    assert r.exit_code == 1
    j = json.loads(r.stdout)
    assert j["schema"] == 1 and set(j["regressed"]) == {"apparent_irqsoff", "misaccounted_tick"}
    assert j["verdicts"]["apparent_irqsoff"]["verdict"] == "regressed"
    assert {"group", "metric", "before", "after", "delta", "relative", "test", "p_value", "n_before", "n_after",
            "significant"} <= set(j["metrics"][0])
    ok = _main("compare", prefix, fixed, "--fail-on-regression")
    assert ok.exit_code == 0 and "fixed" in ok.stdout


def test_compare_markdown_sides_of_several_traces_and_bad_input():
    r = _main("compare", str(SAMPLES / "arm64*prefix*.v7.dat"), str(SAMPLES / "arm64*fixed*.v7.dat"), "--markdown")
    assert r.exit_code == 0, r.output
    assert re.search(r"\| bug class +\| verdict +\|", r.stdout) and r.stdout.count("synth-prefix") >= 2
    for kind in KINDS:
        assert re.search(rf"\| {kind} +\| fixed +\|", r.stdout), kind  # pooled: each side decides every kind
    bad = _main("compare", str(SAMPLES / "nope.dat"), str(SAMPLES / "arm64-6.1-synth-fixed-tick.v7.dat"))
    assert bad.exit_code == 2 and "nope.dat" in bad.stderr and "Traceback" not in bad.output
    both = _main("compare", "a", "b", "--json", "--markdown")
    assert both.exit_code == 2


def _png_size(p: Path) -> tuple[int, int]:
    data = p.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_writes_markdown_and_every_figure_it_links(tmp_path):
    out = tmp_path / "rep"
    r = _main("report", str(SAMPLES / "arm64-6.1-synth-fixed-tick.v7.dat"),
              "--vs", str(SAMPLES / "arm64-6.1-synth-prefix-tick.v7.dat"), "-o", str(out))
    assert r.exit_code == 0, r.output
    md = (out / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", md)
    assert {"timeline.png", "irqsoff-cdf.png", "exit-handling.png", "ticks-per-cpu.png", "timeline-baseline.png"} <= set(links)
    for name in links:
        assert "/" not in name and (out / name).is_file(), name
    for png in out.glob("*.png"):
        w, h = _png_size(png)
        assert 800 <= w <= 1200 and 250 <= h <= 1400, (png.name, w, h)
        assert png.stat().st_size > 10_000
    for svg in out.glob("*.svg"):
        assert ET.parse(svg).getroot().tag.endswith("svg")
    assert re.search(r"\| apparent_irqsoff +\| fixed +\|", md) and re.search(r"\| misaccounted_tick +\| fixed +\|", md)
    assert sorted(p.name for p in out.iterdir()) == sorted({"report.md", *links, *(l.replace(".png", ".svg") for l in links)})


def test_report_refuses_to_write_outside_its_folder(tmp_path):
    a = analysis(str(SAMPLES / "arm64-6.1-synth-fixed-tick.v7.dat"))
    outside = tmp_path / "elsewhere.png"
    out = tmp_path / "rep"
    out.mkdir()
    (out / "timeline.png").symlink_to(outside)
    with pytest.raises(kvmtrace.errors.OutputError):
        write_report(a, out)
    assert not outside.exists()
    f = tmp_path / "file"
    f.write_text("x")
    r = _main("report", str(SAMPLES / "arm64-6.1-synth-fixed-tick.v7.dat"), "-o", str(f))
    assert r.exit_code == 2 and "not a folder" in r.stderr


def _drawn(fig) -> int:
    """Marks a figure draws: bar segments, line points, collection members."""
    n = 0
    for ax in fig.axes:
        n += sum(len(c.get_paths()) for c in ax.collections)
        n += sum(len(ln.get_xdata()) for ln in ax.lines)
        n += len(ax.patches)
    return n


def test_plots_stay_small_on_a_big_real_trace_and_zoom_on_the_worst_window():
    a = analysis(str(ARM64 / "arm64-6.1-prefix-nohzfull.dat"))
    w = kplot.worst_window(a)
    apparent = a.frame("irqsoff", "windows")
    longest = apparent[apparent["kind"] == "apparent"]["duration_ns"].max()
    assert w.why == "longest apparent irqs-off window" and w.end - w.start >= longest
    fig = kplot.timeline(a)
    assert 0 < _drawn(fig) <= 2000
    wide = kplot.timeline(a, window=(a.trace.meta.first_ns, a.trace.meta.last_ns), max_items=500)
    assert 0 < _drawn(wide) <= 500
    for f in (kplot.irqsoff_cdf({"before": a, "after": analysis(str(ARM64 / "arm64-6.1-fixed-nohzfull.dat"))}),
              kplot.exit_handling(a), kplot.ticks_per_cpu(analysis(str(ARM64 / "arm64-6.1-prefix-tick.dat")))):
        assert 0 < _drawn(f) <= 3000
        ax = f.axes[0]
        assert ax.get_xlabel() and ax.get_title()


def test_progress_is_reported_and_drawn_only_on_a_terminal():
    seen: list[tuple[str, float]] = []
    with progress.listening(lambda s, f: seen.append((s, f))):
        kvmtrace.analyze(str(SAMPLES / "arm64-6.1-synth-prefix-tick.report-tl.txt.xz"))
    stages = [s for s, _ in seen]
    assert stages[0].startswith("reading ") and stages[-1].startswith("analyzing ") and seen[-1][1] == 1.0
    fractions = [f for s, f in seen if s.startswith("analyzing")]
    assert fractions == sorted(fractions)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    t = Tty()
    bar = Bar(t, min_interval=0)
    bar("reading x.dat", 0.5)
    bar("reading x.dat", 1.0)
    bar.close()
    assert "\r" in t.getvalue() and "50%" in t.getvalue() and "100%" in t.getvalue()
    r = _main("analyze", str(SAMPLES / "arm64-6.1-synth-prefix-tick.v7.dat"))
    assert r.exit_code == 0 and r.stderr == ""  # not a terminal: no bar


def test_report_and_compare_of_traces_without_guests(tmp_path):
    """Host-only traces (no kvm events): a report with its figures, and an undecidable comparison."""
    from conftest import X86_618
    host = str(X86_618 / "host-idle.v7-zstd.dat")
    r = _main("report", host, "-o", str(tmp_path / "rep"))
    assert r.exit_code == 0, r.output
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "**Verdict: unknown**" in md and "Could not decide" in md
    for name in re.findall(r"\]\(([^)]+\.png)\)", md):
        assert _png_size(tmp_path / "rep" / name)[0] >= 800
    c = compare(host, host)
    assert {v["verdict"] for v in c.verdicts.values()} == {"undecidable"}
