"""Scale: memory of a selective load with a chunked analysis, the Parquet cache speed-up, a batch on dask.

    python3 benchmarks/bench_scale.py memory [EVENTS]   # default 20,000,000 synthesized events
    python3 benchmarks/bench_scale.py cache [EVENTS]    # default 2,000,000
    python3 benchmarks/bench_scale.py batch [TRACES]    # default 200 small traces, 2 workers vs serial

memory: synthesizes an arm64 pre-fix nohz_full trace (tracefs text and trace.dat v7), then in a
fresh process per format and mode loads it with ``select=analyzers.selection()`` and analyzes it,
the model built over all kept events at once ("lean") and 1M events at a time ("chunked", what
``analyze --low-memory`` does); prints each process's peak RSS beside the size the full events
table would take (bytes per event of a full load, measured on a 1M-event trace of the same
scenario, times the events) and checks both modes find the same. Traces are written to a
temporary folder and removed.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVENTS_PER_SECOND_OF_TRACE = 132_500  # what the default scenario emits per simulated second

CHILD = r"""
import json, resource, sys, time
import kvmtrace
from kvmtrace.analyzers import selection
t = time.perf_counter()
lean = sys.argv[2] != "full"
tr = kvmtrace.load(sys.argv[1], select=selection() if lean else None)
load = time.perf_counter() - t
load_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
a = kvmtrace.analyze(tr, chunk_events=1_000_000 if sys.argv[2] == "chunked" else None)
table = int(tr.events.memory_usage(deep=True).sum())
print(json.dumps({"events": tr.meta.events + tr.meta.not_kept, "kept": tr.meta.events, "load_s": load,
                  "total_s": time.perf_counter() - t, "load_rss_mb": load_rss, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "table_bytes": table, "rcu": a.counts()["rcu_not_watching"]["proven"],
                  "counts": a.counts(), "runs": len(a.runs)}))
"""


def _synth(tmp: Path, events: int, name: str, formats=("tracefs", "dat7")) -> dict:
    from kvmtrace.synth import Scenario, synth
    return synth(Scenario(duration_ns=int(events / EVENTS_PER_SECOND_OF_TRACE * 1e9), seed=3), tmp, name=name,
                 formats=formats)


def _child(path: str, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, path, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def memory(events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        small = _synth(Path(tmp), 1_000_000, "small")
        per_event = {f: _child(small["paths"][f], "full") for f in ("tracefs", "dat7")}
        for f in ("tracefs", "dat7"):
            Path(small["paths"][f]).unlink()
        t = time.perf_counter()
        big = _synth(Path(tmp), events, "big")
        print(f"synthesized {big['events']:,} events in {time.perf_counter() - t:.0f} s "
              f"(rcu_not_watching injected: {big['counts']['rcu_not_watching']:,})")
        for f in ("tracefs", "dat7"):
            size = Path(big["paths"][f]).stat().st_size
            full_mb = per_event[f]["table_bytes"] / per_event[f]["events"] * big["events"] / 2**20
            full_rss = per_event[f]["rss_mb"] / per_event[f]["events"] * big["events"]
            print(f"{f:8s} file {size / 2**20:8.0f} MB; the full events table would take {full_mb:,.0f} MB, "
                  f"a full load+analyze peak ~{full_rss:,.0f} MB (scaled from 1M events)")
            got = {}
            for mode in ("lean", "chunked"):
                r = got[mode] = _child(big["paths"][f], mode)
                print(f"  {mode:8s} {r['events']:,} events, {r['kept']:,} kept, load+analyze {r['total_s']:.0f} s, "
                      f"rcu found {r['rcu']:,}; peak RSS {r['rss_mb']:8,.0f} MB = "
                      f"{r['rss_mb'] * 2**20 / r['events']:.0f} B/event ({r['rss_mb'] / full_rss:.2f} of the full peak; "
                      f"{r['load_rss_mb']:,.0f} MB by the end of the load)")
            same = (got["lean"]["counts"], got["lean"]["runs"]) == (got["chunked"]["counts"], got["chunked"]["runs"])
            print(f"  chunked finds the same as lean: {same}")


def cache(events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        r = _synth(Path(tmp), events, "c")
        import kvmtrace
        for f in ("tracefs", "dat7"):
            cdir = Path(tmp) / f"cache-{f}"
            t = time.perf_counter()
            kvmtrace.load(r["paths"][f], cache=True, cache_dir=cdir)
            first = time.perf_counter() - t
            t = time.perf_counter()
            tr = kvmtrace.load(r["paths"][f], cache=True, cache_dir=cdir)
            second = time.perf_counter() - t
            assert tr.meta.kernel["cache"] == "hit"
            print(f"{f:8s} {tr.meta.events:,} events: first load (parse + write cache) {first:6.2f} s, "
                  f"second (cache) {second:6.2f} s  speed-up {first / second:5.1f}x (target >= 5)")


def batch(n: int) -> None:
    from kvmtrace.batch import analyze_many
    from kvmtrace.synth import Scenario, synth
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(n):
            r = synth(Scenario(duration_ns=40_000_000, seed=100 + i), tmp, name=f"t{i:03d}", formats=("dat7",))
            paths.append(r["paths"]["dat7"])
        events = sum(1 for _ in paths)
        t = time.perf_counter()
        s = analyze_many(paths, serial=True)
        serial = time.perf_counter() - t
        t = time.perf_counter()
        p = analyze_many(paths, workers=2)
        pool_s = time.perf_counter() - t
        from dask.distributed import LocalCluster
        t = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as c:
            d = analyze_many(paths, scheduler=c.scheduler_address)
        dask_s = time.perf_counter() - t

        def rows(x):
            return x.drop(columns=["seconds", "cache"]).astype(str)
        same = rows(s).equals(rows(p)) and rows(s).equals(rows(d))
        print(f"{events} traces ({int(s['events'].sum()):,} events): serial {serial:.1f} s, process pool 2 workers "
              f"{pool_s:.1f} s ({serial / pool_s:.2f}x), dask LocalCluster 2 workers {dask_s:.1f} s incl. its start "
              f"({serial / dask_s:.2f}x); same rows in all three: {same}")


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "memory"
    arg = int(sys.argv[2]) if len(sys.argv) > 2 else None
    {"memory": lambda: memory(arg or 20_000_000), "cache": lambda: cache(arg or 2_000_000),
     "batch": lambda: batch(arg or 200)}[what]()


if __name__ == "__main__":
    main()
