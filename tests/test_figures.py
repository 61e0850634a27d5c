"""Figures say what they count: per-side counts, marks for one-sample boxes, words where there is no data."""
from __future__ import annotations

import functools

import kvmtrace
import kvmtrace.plot as kplot
from conftest import ARM64, X86_618


@functools.lru_cache(maxsize=None)
def analysis(path: str) -> kvmtrace.Analysis:
    return kvmtrace.analyze(path)


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_a_trace_without_guests_gets_words_not_blank_axes():
    a = analysis(str(X86_618 / "host-idle.v7-zstd.dat"))
    for fig, words in ((kplot.exit_handling(a), "no guest runs in this trace"),
                       (kplot.ticks_per_cpu(a), "no ticks on vCPU CPUs"),
                       (kplot.irqsoff_cdf(a), "no irqs-off windows")):
        ax = fig.axes[0]
        assert any(words in t for t in _texts(fig)), words
        assert not ax.get_xticks().size and not ax.get_yticks().size and not ax.patches and not ax.lines


def test_exit_handling_counts_each_side_and_marks_one_sample_reasons():
    b, a = analysis(str(ARM64 / "arm64-6.1-prefix-tick.dat")), analysis(str(ARM64 / "arm64-6.1-fixed-tick.dat"))
    fig = kplot.exit_handling({"before": b, "after": a})
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    nb, na = (x.runs["reason"].value_counts() for x in (b, a))
    assert f"IRQ ({nb['IRQ']:,} / {na['IRQ']:,})" in labels and f"IABT_LOW ({nb['IABT_LOW']} / {na['IABT_LOW']})" in labels
    marks = [ln for ln in fig.axes[0].lines if ln.get_marker() == "D"]
    assert sum(len(ln.get_xdata()) for ln in marks) == 2  # IABT_LOW: one exit on each side


def test_the_tick_figure_counts_what_the_tick_table_counts():
    a = kvmtrace.analyze(str(X86_618.parent / "real-x86-6.1-qemu-svm" / "x86-6.1-prefixtick-tick.dat"),
                         kernel_release="5.10.40")
    fig = kplot.ticks_per_cpu(a)
    per_cpu = a.frame("ticks", "per_cpu")
    heights = sorted(int(p.get_height()) for p in fig.axes[0].patches)
    assert heights == sorted(int(x) for x in per_cpu["misaccounted"]) == [199]
    assert "199 of 242" in _texts(fig) and "as the table" in fig.axes[0].get_ylabel()


def test_every_timeline_lane_is_named():
    fig = kplot.timeline(analysis(str(ARM64 / "arm64-6.1-prefix-nohzfull.dat")))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["CPU 1  guest", "irqs-off", "RCU · IRQs · ticks"]


def test_the_timeline_of_a_fixed_kernel_shows_a_guest_run():
    """No apparent window to zoom on: the window opened in the guest entry, with its guest run in view."""
    a = analysis(str(ARM64 / "arm64-6.1-fixed-nohzfull.dat"))
    w = kplot.worst_window(a)
    runs = a.runs
    assert "guest entry" in w.why
    assert ((runs["entry_ns"] < w.end) & (runs["return_ns"] > w.start)).any()
    assert any("guest running" in t.get_text() for t in kplot.timeline(a).legends[0].get_texts())


def _bars(ax, color: str) -> list[tuple[float, float]]:
    """(start, end) µs of the bars of one colour drawn on ``ax``."""
    from matplotlib.colors import to_rgba

    out = []
    for coll in ax.collections:
        if hasattr(coll, "get_paths") and len(coll.get_facecolors()) and tuple(coll.get_facecolors()[0]) == to_rgba(color):
            for path in coll.get_paths():
                xs = path.vertices[:, 0]
                out.append((float(xs.min()), float(xs.max())))
    return out


def test_each_bug_class_figure_shows_the_proving_run_beside_the_fixed_one():
    """Per bug class proven before: the before row holds the run that proves it, the after row the
    fixed kernel's run of the same kind, both rows as wide in time."""
    from kvmtrace.plot.evidence import present
    from kvmtrace.plot.style import COLORS

    b, a = analysis(str(ARM64 / "arm64-6.1-prefix-nohzfull.dat")), analysis(str(ARM64 / "arm64-6.1-fixed-nohzfull.dat"))
    sides = {"before": b, "after": a}
    assert present(sides) == ["apparent_irqsoff", "rcu_not_watching"]  # no tick is proven misaccounted here
    fig = kplot.evidence(sides, "apparent_irqsoff")
    before, after = fig.axes
    assert before.get_xlim() == after.get_xlim()
    red = _bars(before, COLORS["apparent"])
    guest = _bars(before, COLORS["guest"])
    assert red and not _bars(after, COLORS["apparent"]) and _bars(after, COLORS["entry"])
    assert any(s < g0 and e >= g1 for s, e in red for g0, g1 in guest)  # opened before kvm_entry, open past the return
    fig = kplot.evidence(sides, "rcu_not_watching")
    before, after = fig.axes
    eqs = _bars(before, COLORS["eqs"])
    irq_x = [x for coll in before.collections if coll.get_label() == "IRQ handler" for seg in coll.get_segments()
             for x in seg[:1, 0]]
    assert any(s < x < e for x in irq_x for s, e in eqs)  # the handler inside the quiescent state
    assert _bars(after, COLORS["eqs"]) and not [c for c in after.collections if c.get_label() == "IRQ handler"]


def test_the_tick_class_figure_marks_due_time_and_charge():
    b = kvmtrace.analyze(str(X86_618.parent / "real-x86-6.1-qemu-svm" / "x86-6.1-prefixtick-tick.dat"),
                         kernel_release="5.10.40")
    a = analysis(str(X86_618.parent / "real-x86-6.1-qemu-svm" / "x86-6.1-tick.dat"))
    fig = kplot.evidence({"before": b, "after": a}, "misaccounted_tick")
    before, after = fig.axes
    stars = lambda ax: sum(len(ln.get_xdata()) for ln in ax.lines if ln.get_marker() == "*")  # noqa: E731
    due = lambda ax: [ln.get_xdata()[0] for ln in ax.lines if ln.get_label() == "tick due"]  # noqa: E731
    assert stars(before) >= 1 and stars(after) == 0 and due(before) and due(after)
    star_x = [x for ln in before.lines if ln.get_marker() == "*" for x in ln.get_xdata()]
    assert min(star_x) > due(before)[0]  # handled after it was due, after the guest returned
    assert before.get_xlim() == after.get_xlim()
