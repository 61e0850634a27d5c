"""Metamorphic tests over every real fixed-kernel trace: no damage proves a bug.

Hypothesis chooses the edit (``damage.py``): a section of the trace.dat (header_page, the formats
the analyses read, kallsyms, printk, uname), the CPU table, one ring-buffer page, one v7 chunk
(its header, or a page inside it compressed again), or lines of a crop of the text (deleted,
duplicated, swapped, unpaired, absurd numbers, run together, garbage, non-UTF-8). A fixed kernel
has none of the three bugs, so any proven finding is one the damage made. The suite runs a few
examples of each; the campaign (``--hypothesis-profile=deep``) runs thousands.
"""
from __future__ import annotations

import lzma
import subprocess
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import kvmtrace
from conftest import ARM64, X86_SVM, _trace_cmd, deep
import damage
from damage import bounded, proves_nothing, ratio

FIXED = {"arm64-nohzfull": ARM64 / "arm64-6.1-fixed-nohzfull", "arm64-tick": ARM64 / "arm64-6.1-fixed-tick",
         "x86-nohzfull": X86_SVM / "x86-6.1-nohzfull", "x86-tick": X86_SVM / "x86-6.1-tick"}
NAMES = st.sampled_from(sorted(FIXED))
BUDGET = settings(max_examples=2500 if deep() else 25)


@pytest.fixture(scope="module")
def v6(tmp_path_factory) -> dict[str, tuple[damage.Layout, int]]:
    """Each fixed trace converted by trace-cmd to v6 without compression: its layout and event count."""
    out = damage.Quiet()
    d = tmp_path_factory.mktemp("v6")
    for name, stem in FIXED.items():
        path = d / f"{name}.dat"
        subprocess.run([_trace_cmd(), "convert", "-i", f"{stem}.dat", "-o", str(path), "--file-version", "6",
                        "--compression", "none"], check=True, capture_output=True, start_new_session=True)
        out[name] = (damage.layout(path), len(kvmtrace.load(path, cache=False).events))
    return out


@pytest.fixture(scope="module")
def texts() -> dict[str, tuple[list[bytes], list[bytes]]]:
    """Each fixed trace's kernel text: (header lines, event lines)."""
    out = damage.Quiet()
    for name, stem in FIXED.items():
        lines = lzma.open(f"{stem}.tracefs.txt.xz").read().splitlines(keepends=True)
        out[name] = ([ln for ln in lines if ln.startswith(b"#")], [ln for ln in lines if not ln.startswith(b"#")])
    return out


def _check(tmp: Path, data: bytes, intact: int | None = None) -> kvmtrace.Trace | None:
    path = tmp / "damaged.dat"
    path.write_bytes(data)
    with bounded():
        return proves_nothing(path, intact)


def test_the_intact_traces_prove_nothing(v6, tmp_path):
    """The baseline: each fixed trace, as v6 and as trace-cmd wrote it, has no proven finding."""
    for name, (lay, events) in v6.items():
        tr = _check(tmp_path, lay.data, events)
        assert tr is not None and len(tr.events) == events and not tr.meta.skipped and not tr.meta.damaged
        assert proves_nothing(Path(f"{FIXED[name]}.dat")) is not None


@BUDGET
@given(name=NAMES, target=st.sampled_from(damage.TEXT_SECTIONS + tuple(f"format:{e}" for e in damage.USED)),
       how=st.sampled_from(damage.TEXT_EDITS), at=ratio(), value=st.integers(0, 1 << 32))
def test_damaged_sections_prove_nothing(v6, tmp_path_factory, name, target, how, at, value):
    lay, _events = v6[name]
    assume(not target.startswith("format:") or target.split(":", 1)[1] in lay.formats)
    _check(tmp_path_factory.mktemp("s"), damage.edit_section(lay, target, how, at, value))


@BUDGET
@given(name=NAMES, cpu=st.integers(0, 7), how=st.sampled_from(damage.CPU_TABLE_EDITS))
def test_a_damaged_cpu_table_is_counted_and_proves_nothing(v6, tmp_path_factory, name, cpu, how):
    lay, events = v6[name]
    tr = _check(tmp_path_factory.mktemp("c"), damage.edit_cpu_table(lay, cpu, how), events)
    if tr is not None and how != "size*2":  # a size past the file end reads what is there: a count then
        assert tr.meta.skipped, how


@BUDGET
@given(name=NAMES, cpu=st.integers(0, 7), how=st.sampled_from(damage.PAGE_EDITS), at=ratio(), other=ratio(),
       value=st.integers(0, 1 << 20))
def test_a_damaged_page_proves_nothing(v6, tmp_path_factory, name, cpu, how, at, other, value):
    """A zeroed, copied, swapped or re-stamped page is counted (it breaks the CPU's time order or
    holds nothing) and its events are damage; flipped bytes and commit sizes prove nothing either."""
    lay, events = v6[name]
    data = damage.edit_cpu_pages(lay, cpu, how, at, other, value)
    tr = _check(tmp_path_factory.mktemp("p"), data, events)
    assert tr is not None  # a page's damage is recoverable: the other pages are read
    inner = (at * (lay.cpu_data[cpu % len(lay.cpu_data)][1] // lay.page)) >= 1  # not the CPU's first page
    if data != lay.data and how in ("zero", "swap") or (how == "stamp-zero" and inner):
        assert set(tr.meta.skipped) & {"empty-page", "misplaced-page", "corrupt-page"}, (how, tr.meta.skipped)


@BUDGET
@given(name=NAMES, cpu=st.integers(0, 7), chunk=ratio(), how=st.sampled_from(damage.CHUNK_EDITS),
       page_edit=st.sampled_from(("zero", "copy", "swap", "stamp-zero", "flip")), at=ratio(), value=st.integers(0, 1 << 20))
def test_a_damaged_v7_chunk_is_counted_and_proves_nothing(v6, tmp_path_factory, name, cpu, chunk, how, page_edit,
                                                          at, value):
    data = damage.edit_chunks(Path(f"{FIXED[name]}.dat"), cpu, chunk, how, page_edit, at, value)
    assume(data is not None)
    tr = _check(tmp_path_factory.mktemp("k"), data, v6[name][1])
    if tr is not None and how != "recompress":
        assert tr.meta.skipped, how


@BUDGET
@given(name=NAMES, start=ratio(), length=st.integers(200, 20_000),
       edits=st.lists(st.tuples(st.sampled_from(damage.TEXT_LINE_EDITS), ratio(), st.floats(0, 0.5), st.integers(0, 1 << 16)),
                      max_size=4))
# the deep campaign's last false proof: the deletes left the reworked entry's irq_disable out of its RCU bracket
@example(name="arm64-tick", start=0.0, length=407, edits=[("delete", 0.0, 0.5, 2), ("delete", 0.375, 0.5, 3)])
def test_cropped_and_edited_text_proves_nothing(texts, tmp_path_factory, name, start, length, edits):
    """A stretch of a fixed kernel's text with its lines edited: every line is an event or counted,
    and nothing is proven. A crop's edges, deleted or unpaired events and damaged lines are no evidence."""
    head, body = texts[name]
    a = int(start * len(body))
    lines = body[a: a + length]
    changed = False  # whether the last edit changed anything (a one-line crop has nothing to merge)
    for how, at, amount, value in edits:
        before, lines = lines, damage.edit_lines(lines, how, at, amount, value)
        changed = lines != before
    path = tmp_path_factory.mktemp("t") / "damaged.txt"
    path.write_bytes(b"".join(head + lines))
    with bounded():
        tr = proves_nothing(path)
    if tr is not None:
        assert tr.meta.events + tr.meta.skipped_total == tr.meta.lines
        if changed and edits[-1][0] in ("merge", "garbage", "non-utf8"):  # (an earlier one's line may be deleted)
            assert tr.meta.damaged or tr.meta.skipped.get("unparsable") or tr.meta.warnings
