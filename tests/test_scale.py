"""Scale: selective (chunked) loads equal full ones, the Parquet cache, and batches on dask.distributed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kvmtrace
from conftest import ARM64, SAMPLES, X86_SVM
from kvmtrace import cache
from kvmtrace.analyzers import selection
from kvmtrace.batch import analyze_many

SELECT_CASES = [ARM64 / "arm64-6.1-prefix-nohzfull.dat", ARM64 / "arm64-6.1-prefix-nohzfull.tracefs.txt.xz",
                ARM64 / "arm64-6.1-fixed-tick.dat", X86_SVM / "x86-6.1-tick.dat",
                SAMPLES / "arm64-6.1-synth-prefix-tick.report-tl.txt.xz", SAMPLES / "x86-5.15-synth-prefix-tick.v7.dat"]


def _essence(a: kvmtrace.analyzers.Analysis) -> dict:
    """Everything an analysis concludes, in comparable form."""
    f = a.findings
    return {
        "verdict": a.verdict["verdict"], "counts": a.counts(),
        "findings": sorted(zip(f["kind"], f["confidence"], map(tuple, f["evidence_seq"]))),
        "runs": a.runs[["entry_seq", "return_seq", "exit_seq", "reason", "host_ns", "irqs", "ticks"]].astype(str).values.tolist(),
        "windows": a.frame("irqsoff", "windows")[["open_seq", "close_seq", "kind"]].astype(str).values.tolist()
        if "windows" in a.results["irqsoff"].frames else [],
        "ticks": a.results["ticks"].metrics, "rcu": a.results["rcu"].metrics,
    }


@pytest.mark.parametrize("path", SELECT_CASES, ids=lambda p: p.name)
def test_selective_load_keeps_less_and_analyzes_exactly_like_a_full_load(path):
    full = kvmtrace.load(path)
    lean = kvmtrace.load(path, select=selection())
    m = lean.meta
    assert m.events + m.not_kept == full.meta.events and m.not_kept > 0
    assert m.selection and "payload" not in lean.events.columns
    assert set(lean.event_names()) <= set(selection().events)
    # events keep their whole-file seq numbers and flags
    merged = full.events.merge(lean.events, on="seq", suffixes=("", "_lean"))
    assert len(merged) == m.events
    for col in ("ts", "cpu", "pid", "irqs_off", "hardirq", "preempt_depth"):
        assert (merged[col].astype(str) == merged[f"{col}_lean"].astype(str)).all(), col
    assert _essence(kvmtrace.analyze(lean)) == _essence(kvmtrace.analyze(full))


def test_selective_trace_dat_compacts_records_and_fields_still_decode():
    path = ARM64 / "arm64-6.1-prefix-tick.dat"
    full, lean = kvmtrace.load(path), kvmtrace.load(path, select=selection())
    kept = sum(len(b) for b in lean.binary.store.bufs)
    assert kept < sum(len(b) for b in full.binary.store.bufs)
    a, b = full.df("kvm_exit"), lean.df("kvm_exit")
    assert a.drop(columns="seq").equals(b.drop(columns="seq")) and (a["seq"].to_numpy() == b["seq"].to_numpy()).all()
    with pytest.raises(KeyError):
        kvmtrace.load(SAMPLES / "arm64-6.1-synth-prefix-tick.report-tl.txt.xz", select=selection()).df("sched_switch")


def test_cache_is_used_on_the_second_load_and_ignored_after_the_file_changes(tmp_path):
    src = tmp_path / "t.dat"
    shutil.copy(SAMPLES / "arm64-6.1-synth-prefix-tick.v7.dat", src)
    cdir = tmp_path / "cache"
    first = kvmtrace.load(src, cache=True, cache_dir=cdir)
    assert first.meta.cache == "written" and len(list(cdir.iterdir())) == 1
    second = kvmtrace.load(src, cache=True, cache_dir=cdir)
    assert second.meta.cache == "hit" and second.path == str(src)
    pd.testing.assert_frame_equal(first.events, second.events)
    assert _essence(kvmtrace.analyze(second)) == _essence(kvmtrace.analyze(first))
    assert second.df("sched_switch").equals(first.df("sched_switch"))  # not cached: read from the file again
    # the file changes (same size even): a new key, a fresh read, the stale entry is never used
    data = bytearray(src.read_bytes())
    src.write_bytes(bytes(data))
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    third = kvmtrace.load(src, cache=True, cache_dir=cdir)
    assert third.meta.cache == "written"
    # a damaged entry is a miss, not an error
    for f in (cdir / cache.key(src)).glob("*.parquet"):
        f.write_bytes(b"garbage")
    assert kvmtrace.load(src, cache=True, cache_dir=cdir).meta.cache == "written"


@pytest.mark.parametrize("name", ["arm64-6.1-prefix-nohzfull.tracefs.txt.xz", "arm64-6.1-synth-prefix-tick.v7.dat"])
def test_cache_round_trip_is_exact(tmp_path, name):
    a = kvmtrace.load(SAMPLES / name, cache=True, cache_dir=tmp_path)
    b = kvmtrace.load(SAMPLES / name, cache=True, cache_dir=tmp_path)
    assert b.meta.cache == "hit"
    pd.testing.assert_frame_equal(a.events, b.events)
    for ev in ("kvm_exit", "rcu_dyntick", "irq_disable", "hrtimer_expire_entry"):
        pd.testing.assert_frame_equal(a.df(ev), b.df(ev))
    assert a.meta.cache == "written"  # the only difference: where the second copy came from
    assert {k: v for k, v in vars(a.meta).items() if k != "cache"} == {k: v for k, v in vars(b.meta).items() if k != "cache"}


def test_cli_cache_options(tmp_path):
    src = str(SAMPLES / "arm64-6.1-synth-fixed-tick.report-tl.txt.xz")
    env = {**os.environ, "KVMTRACE_CACHE_DIR": str(tmp_path / "env-cache")}
    run = lambda *a: subprocess.run([sys.executable, "-m", "kvmtrace.cli", *a], capture_output=True, text=True, env=env)  # noqa: E731
    assert run("analyze", src, "--no-cache").returncode == 0 and not (tmp_path / "env-cache").exists()
    assert run("analyze", src).returncode == 0 and len(list((tmp_path / "env-cache").iterdir())) == 1
    assert run("analyze", src, "--cache-dir", str(tmp_path / "mine")).returncode == 0
    assert len(list((tmp_path / "mine").iterdir())) == 1


BATCH = [str(SAMPLES / n) for n in ("arm64-6.1-synth-prefix-tick.v7.dat", "arm64-6.1-synth-fixed-nohzfull.v7.dat",
                                    "x86-6.1-synth-fixed-tick.report-tl.txt.xz", "arm64-6.1-synth-prefix-nohzfull.v7.dat")]


def _stable(t: pd.DataFrame) -> pd.DataFrame:
    return t.drop(columns=["seconds", "cache"]).astype(str)


@pytest.fixture(scope="module")
def serial_rows(tmp_path_factory) -> pd.DataFrame:
    bad = tmp_path_factory.mktemp("bad") / "broken.dat"
    bad.write_bytes(Path(BATCH[0]).read_bytes()[:3000])
    return analyze_many([*BATCH, str(bad)], serial=True)


def test_batch_rows_and_a_failing_trace_in_its_row(serial_rows):
    t = serial_rows
    assert list(t["path"][:4]) == BATCH and t["error"][:4].isna().all()
    assert t.loc[0, "apparent_irqsoff_proven"] == 968 and t.loc[1, "verdict"] == "fixed"
    assert "broken.dat" in t.loc[4, "error"] and pd.isna(t.loc[4, "verdict"])
    assert str(t["guest_runs"].dtype) == "Int64" and pd.isna(t.loc[4, "guest_runs"])  # counts stay integers


def test_batch_in_a_local_process_pool_equals_serial(serial_rows):
    paths = list(serial_rows["path"])
    t = analyze_many(paths, workers=2)
    pd.testing.assert_frame_equal(_stable(t), _stable(serial_rows))
    two = analyze_many(paths[:2], workers=2)  # one or two traces: in this process
    pd.testing.assert_frame_equal(_stable(two), _stable(serial_rows[:2]))


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_batch_on_a_separate_scheduler_and_worker(serial_rows, tmp_path):
    sfile = tmp_path / "scheduler.json"
    sched = _start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sfile)])
    worker = None
    try:
        for _ in range(300):
            if sfile.exists() and sfile.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(sfile.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker = _start(["worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                         "--host", "127.0.0.1"])
        t = analyze_many(list(serial_rows["path"]), scheduler=address)
        pd.testing.assert_frame_equal(_stable(t), _stable(serial_rows))
        env = {**os.environ, "DASK_SCHEDULER_ADDRESS": address}
        r = subprocess.run([sys.executable, "-m", "kvmtrace.cli", "analyze", *BATCH, "--json", "--no-cache"],
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        rows = json.loads(r.stdout)["traces"]
        assert [x["path"] for x in rows] == BATCH and rows[0]["apparent_irqsoff_proven"] == 968
    finally:
        for p in (worker, sched):
            if p is not None:
                p.terminate()
                p.wait(timeout=30)


def test_compare_runs_its_traces_on_the_cluster_with_the_same_result():
    from kvmtrace.batch import compare_part, run
    from kvmtrace.compare import compare
    paths = [BATCH[0], str(SAMPLES / "arm64-6.1-synth-fixed-tick.v7.dat")]
    parts = run(compare_part, paths, None, False, None, workers=2)
    a = compare(parts[:1], parts[1:])
    b = compare(paths[0], paths[1])
    assert a.verdicts == b.verdicts
    pd.testing.assert_frame_equal(a.table.astype(str), b.table.astype(str))
    assert np.array_equal(a.before.irqsoff_ns, b.before.irqsoff_ns)
