"""Folders, globs and comma lists: only traces are taken, what is left out is said, a buffer counts once."""
from __future__ import annotations

import json
import re
import shutil

from click.testing import CliRunner

from conftest import ARM64, SAMPLES
from kvmtrace.cli.main import cli

PREFIX = SAMPLES / "arm64-6.1-synth-prefix-tick"


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _folder(tmp_path):
    d = tmp_path / "lab"
    d.mkdir()
    shutil.copy(f"{PREFIX}.v7.dat", d)
    shutil.copy(SAMPLES / "arm64-6.1-synth-fixed-tick.v7.dat", d)
    shutil.copy(ARM64 / "arm64-6.1-fixed-tick.meta.txt", d)  # notes that quote a few trace lines
    shutil.copy(ARM64 / "prefix-revert.diff", d)
    (d / "empty.txt").write_text("")
    (d / "notes.log").write_text("booted fine\nran the guest\n")
    return d


def test_a_folder_takes_only_traces_and_lists_the_rest_with_why(tmp_path):
    d = _folder(tmp_path)
    r = _run("analyze", str(d), "--json", "--serial", "--no-cache")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert sorted(t["path"].rsplit("/", 1)[1] for t in doc["traces"]) == ["arm64-6.1-synth-fixed-tick.v7.dat",
                                                                            "arm64-6.1-synth-prefix-tick.v7.dat"]
    why = {s["path"].rsplit("/", 1)[1]: s["why"] for s in doc["skipped"]}
    assert set(why) == {"arm64-6.1-fixed-tick.meta.txt", "prefix-revert.diff", "empty.txt", "notes.log"}
    assert why["empty.txt"] == "empty" and "lines are trace events" in why["arm64-6.1-fixed-tick.meta.txt"]
    assert "skipped 4 file(s) that are not traces" in r.stderr


def test_a_glob_that_matches_a_diff_goes_on(tmp_path):
    d = _folder(tmp_path)
    r = _run("analyze", str(d / "*"), "--serial", "--no-cache")
    assert "prefix-revert.diff (not a trace" in r.stderr and "traces failed" not in r.stderr
    rows = [line for line in r.stdout.splitlines() if ".v7.dat" in line]
    assert len(rows) == 2
    assert "nan" not in r.stdout and "<NA>" not in r.stdout
    assert all(re.search(r"\d,\d{3}", row) for row in rows)  # event counts with thousands separators
    assert "apparent_irqsoff proven" in r.stdout and "misaccounted_tick proven" in r.stdout


def test_the_same_buffer_in_several_formats_counts_once(tmp_path):
    paths = [f"{PREFIX}.v7.dat", f"{PREFIX}.report-tl.txt.xz"]
    r = _run("analyze", ",".join(paths), "--json", "--serial", "--no-cache", "--fail-on", "apparent_irqsoff")
    doc = json.loads(r.stdout)
    assert doc["traces"][1]["same_buffer_as"] == paths[0] and doc["traces"][0]["same_buffer_as"] is None
    assert "holds the same events" in r.stderr
    assert "kvmtrace: 968 finding(s)" in r.stderr  # counted once, not twice
    c = _run("compare", ",".join(paths), str(SAMPLES / "arm64-6.1-synth-fixed-tick.v7.dat"), "--json", "--serial")
    j = json.loads(c.stdout)
    assert j["before"]["guest_runs"] == 968 and j["before"]["same_buffer"] == {paths[1]: paths[0]}
    assert j["verdicts"]["apparent_irqsoff"]["before"] == 968


def test_two_kernels_that_recorded_the_same_events_are_two_buffers():
    """The x86 5.10 and 6.1 samples are one seed's events (the same per CPU, to the timestamp) in
    trace.dat files whose UNAMEs name different releases, and the release decides where x86 charges
    a tick: neither is the other's buffer, in a batch or on a compare side, and both count."""
    import kvmtrace

    old, new = (str(SAMPLES / f"x86-{k}-synth-{e}-tick.v7.dat") for k, e in (("5.10", "prefix"), ("6.1", "fixed")))
    a, b = (kvmtrace.load(p).events for p in (old, new))
    assert a[["ts", "cpu", "event"]].astype(str).equals(b[["ts", "cpu", "event"]].astype(str))
    r = _run("analyze", f"{old},{new}", "--json", "--serial", "--no-cache", "--fail-on", "misaccounted_tick")
    doc = json.loads(r.stdout)
    assert [t["kernel_release"] for t in doc["traces"]] == ["5.10.40", "6.1.0"]
    assert doc["traces"][0]["fingerprint"] == doc["traces"][1]["fingerprint"]
    assert [t["same_buffer_as"] for t in doc["traces"]] == [None, None] and "holds the same events" not in r.stderr
    assert [t["misaccounted_tick_proven"] for t in doc["traces"]] == [46, 0]
    c = json.loads(_run("compare", f"{old},{new}", str(SAMPLES / "x86-5.15-synth-prefix-tick.v7.dat"), "--json",
                        "--serial").stdout)
    assert c["before"]["same_buffer"] == {} and c["before"]["guest_runs"] == 2 * doc["traces"][0]["guest_runs"]
    # the text rendering of one of them names no release: it is that buffer again, counted once
    text = f"{PREFIX}.report-tl.txt.xz"
    r = _run("analyze", f"{PREFIX}.v7.dat,{text}", "--json", "--serial", "--no-cache")
    assert [t["kernel_release"] for t in json.loads(r.stdout)["traces"]] == ["6.1.0", None]
    assert json.loads(r.stdout)["traces"][1]["same_buffer_as"] == f"{PREFIX}.v7.dat"


def test_a_failing_trace_in_a_batch_is_named(tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    shutil.copy(f"{PREFIX}.v7.dat", d)
    (d / "junk.dat").write_bytes(b"\x17\x08\x44tracing6\0" + b"\0" * 64)
    r = _run("analyze", str(d), "--serial", "--no-cache")
    assert r.exit_code == 2 and "1 of 2 traces failed" in r.stderr and "junk.dat" in r.stderr
