"""Load (and analyze) every file of a corpus in one process with bounded memory and time.

    python3 hostile_runner.py CORPUS_DIR RESULTS.jsonl [MEMORY_MB] [SECONDS]

Each input ends as ``error`` (a TraceError whose message names the file), ``partial`` (loaded,
with skipped/lost counts or warnings), ``clean`` (loaded, nothing to report), or a failure:
``crash`` (any other exception, MemoryError included: sizes must be checked before allocating)
or ``hang`` (over the time bound).
"""
from __future__ import annotations

import json
import resource
import signal
import sys
import time
from pathlib import Path


class Hang(Exception):
    pass


def _alarm(_sig, _frame):
    raise Hang()


def main() -> None:
    corpus, results = Path(sys.argv[1]), Path(sys.argv[2])
    mem_mb = int(sys.argv[3]) if len(sys.argv) > 3 else 3072
    seconds = int(sys.argv[4]) if len(sys.argv) > 4 else 30
    resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))
    signal.signal(signal.SIGALRM, _alarm)
    import kvmtrace
    from kvmtrace.errors import TraceError

    with open(results, "w") as out:
        for f in sorted(corpus.iterdir()):
            t = time.perf_counter()
            row: dict = {"file": f.name}
            signal.alarm(seconds)
            try:
                tr = kvmtrace.load(f)
                m = tr.meta
                damaged = m.skipped_total or m.lost_total or m.lost_markers or m.warnings
                row.update(outcome="partial" if damaged else "clean", events=m.events, skipped=m.skipped_total,
                           lost=m.lost_total, warnings=len(m.warnings))
                a = kvmtrace.analyze(tr)
                row["proven"] = int((a.findings["confidence"] == "proven").sum())
                row["json_meta_skipped"] = a.to_json()["meta"]["skipped_total"]
            except TraceError as exc:
                msg = str(exc)
                row.update(outcome="error", message=msg, names_file=str(f) in msg, one_line="\n" not in msg)
            except Hang:
                row.update(outcome="hang")
            except BaseException as exc:  # noqa: BLE001 - every other ending is a defect to report
                row.update(outcome="crash", message=f"{type(exc).__name__}: {exc}"[:300])
            finally:
                signal.alarm(0)
            row["seconds"] = round(time.perf_counter() - t, 3)
            out.write(json.dumps(row) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
