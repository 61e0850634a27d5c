"""The Parquet cache as users meet it: never fatal, bounded, inspectable and clearable."""
from __future__ import annotations

import json
import os
import shutil

from click.testing import CliRunner

import kvmtrace
from kvmtrace import cache
from kvmtrace.cli.main import cli

from conftest import SAMPLES

SAMPLE = SAMPLES / "arm64-6.1-synth-fixed-nohzfull.v7.dat"


def test_an_unwritable_cache_is_a_warning_and_the_analysis_goes_on(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    tr = kvmtrace.load(SAMPLE, cache=True, cache_dir=blocked)
    assert tr.meta.cache is None and any("cannot write the trace cache" in w for w in tr.meta.warnings)
    plain = kvmtrace.load(SAMPLE)
    assert kvmtrace.analyze(tr).to_json()["verdict"] == kvmtrace.analyze(plain).to_json()["verdict"] == "fixed"
    r = CliRunner().invoke(cli, ["analyze", str(SAMPLE), "--cache-dir", str(blocked)])
    assert r.exit_code == 0, r.output
    assert "warning:" in r.stderr and "cannot write the trace cache" in r.stderr and "verdict" in r.stdout
    assert not list(tmp_path.glob("**/.tmp-*"))  # nothing half-written left behind


def _copies(tmp_path, n: int) -> list[str]:
    out = []
    for i in range(n):
        p = tmp_path / f"t{i}.dat"
        shutil.copy(SAMPLE, p)
        out.append(str(p))
    return out


def test_the_cache_is_bounded_and_drops_the_least_recently_used_first(tmp_path, monkeypatch):
    a, b, c = _copies(tmp_path, 3)
    store = tmp_path / "cache"
    kvmtrace.load(a, cache=True, cache_dir=store)
    one = cache.entries(store)[0].bytes
    monkeypatch.setenv("KVMTRACE_CACHE_MAX", str(int(2.5 * one)))  # room for two copies
    kvmtrace.load(b, cache=True, cache_dir=store)
    os.utime(cache.entries(store)[0].folder / "meta.json", (1, 1))  # a was used long ago ...
    assert kvmtrace.load(a, cache=True, cache_dir=store).meta.cache == "hit"  # ... and now again: b is the oldest
    assert kvmtrace.load(c, cache=True, cache_dir=store).meta.cache == "written"
    kept = {e.trace for e in cache.entries(store)}
    assert kept == {a, c}, kept
    assert sum(e.bytes for e in cache.entries(store)) <= 2.5 * one
    monkeypatch.setenv("KVMTRACE_CACHE_MAX", "1K")  # smaller than one copy: not kept, and it says so
    d = kvmtrace.load(b, cache=True, cache_dir=store)
    assert d.meta.cache is None and any("larger than the cache's bound" in w for w in d.meta.warnings)
    assert b not in {e.trace for e in cache.entries(store)}


def test_cache_info_and_clear(tmp_path, monkeypatch):
    store = tmp_path / "cache"
    for p in _copies(tmp_path, 2):
        kvmtrace.load(p, cache=True, cache_dir=store)
    monkeypatch.setenv("KVMTRACE_CACHE_MAX", "1G")
    r = CliRunner().invoke(cli, ["cache", "info", "--cache-dir", str(store), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["limit_bytes"] == 1 << 30 and len(doc["entries"]) == 2
    assert doc["bytes"] == sum(e["bytes"] for e in doc["entries"]) == sum(e.bytes for e in cache.entries(store))
    text = CliRunner().invoke(cli, ["cache", "info", "--cache-dir", str(store)]).stdout
    assert "2 traces" in text and "t0.dat" in text and "t1.dat" in text
    r = CliRunner().invoke(cli, ["cache", "clear", "--cache-dir", str(store)])
    assert r.exit_code == 0 and "removed 2 cached traces" in r.stdout
    assert cache.entries(store) == []
    monkeypatch.setenv("KVMTRACE_CACHE_MAX", "lots")
    bad = CliRunner().invoke(cli, ["cache", "info", "--cache-dir", str(store)])
    assert bad.exit_code == 2 and "KVMTRACE_CACHE_MAX='lots': not a size" in bad.stderr and "Traceback" not in bad.output
