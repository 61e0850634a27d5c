"""Shared fixtures: paths to the real traces and trace-cmd as the reference oracle."""
from __future__ import annotations

import collections
import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KVMTRACE_SHARED_TRACES", ROOT.parent / "shared" / "traces"))
X86_618 = SHARED / "real-x86-6.18"
ARM64 = SHARED / "real-arm64-6.1-qemu"
X86_SVM = SHARED / "real-x86-6.1-qemu-svm"
PUBLIC = SHARED / "public"
SAMPLES = ROOT / "sample_traces"


VARIANTS = ["prefix-nohzfull", "prefix-tick", "fixed-nohzfull", "fixed-tick"]


def _num(s: str) -> int:
    return int(re.match(r"[\d,]+", s.strip()).group(0).replace(",", ""))


@functools.lru_cache(maxsize=None)
def reference() -> dict[str, dict]:
    """real-arm64-6.1-qemu/README.md's table: variant → runs, bug-1 handlers, bug-2 runs, entry logic."""
    out = {}
    for line in (ARM64 / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in VARIANTS:
            out[cells[0]] = {"runs": _num(cells[1]), "bug1": _num(cells[2]), "bug2": _num(cells[3]), "verdict": cells[4]}
    assert set(out) == set(VARIANTS)
    return out


def _trace_cmd() -> str:
    exe = shutil.which("trace-cmd")
    if exe is None:
        raise RuntimeError("trace-cmd is the reference oracle for these tests: apt-get install -y trace-cmd")
    return exe


@functools.lru_cache(maxsize=None)
def trace_cmd_report(dat: str, *flags: str) -> str:
    """``trace-cmd report FLAGS dat`` output (cached per session).

    trace-cmd exits 0 with whatever it printed so far when it gets SIGINT (it says "Received
    SIGINT" on stderr), so an interrupted oracle would look like a trace with no events. It runs in
    its own session, out of reach of signals sent to the test run's process group. A report it says
    was interrupted, or one with no line past its header, is run again, and after three such runs it
    is an error rather than a reference."""
    for _attempt in range(3):
        out = subprocess.run([_trace_cmd(), "report", *flags, dat], capture_output=True, check=True,
                             start_new_session=True)
        if b"Received SIGINT" not in out.stderr and len(out.stdout.splitlines()) >= 2:
            return out.stdout.decode("utf-8", "replace")
    raise RuntimeError(f"trace-cmd report {dat} printed {len(out.stdout)} bytes, "
                       f"stderr: {out.stderr.decode(errors='replace')!r}")


_LINE = re.compile(r"^\s*(.*?)-(\d+)\s+\[(\d+)\]\s+(\d+\.\d+):\s+([\w]+):")
_LAT_LINE = re.compile(r"^(.{8})-(\d+)\s+(\d+)(\S+)\s+(\d+\.\d+):\s+([\w]+):\s*(.*)$")


def oracle_counts(text: str, latency: bool = False) -> collections.Counter:
    """(event, cpu) counts from trace-cmd report text (default, or ``-N -t -l`` with ``latency``),
    by an independent regex."""
    line_re, ev = (_LAT_LINE, 6) if latency else (_LINE, 5)
    c: collections.Counter = collections.Counter()
    for line in text.splitlines():
        m = line_re.match(line)
        if m:
            c[(m.group(ev), int(m.group(3)))] += 1
    return c


def oracle_latency_rows(text: str) -> list[tuple]:
    """(comm8, pid, cpu, flags, ts_ns, event, payload) from ``trace-cmd report -N -t -l``."""
    rows = []
    for line in text.splitlines():
        m = _LAT_LINE.match(line)
        if m:
            sec, frac = m.group(5).split(".")
            ts = int(sec) * 10**9 + int(frac.ljust(9, "0")[:9])
            rows.append((m.group(1).strip(), int(m.group(2)), int(m.group(3)), m.group(4), ts, m.group(6), m.group(7)))
    return rows


def table_counts(events) -> collections.Counter:
    g = events.groupby(["event", "cpu"], observed=True).size()
    return collections.Counter({(str(e), int(c)): int(n) for (e, c), n in g.items() if n})


@pytest.fixture(scope="session")
def shared() -> Path:
    assert SHARED.is_dir(), f"real traces not found at {SHARED}"
    return SHARED


# hypothesis budgets: "ci" fits the suite's time; "deep" is the campaign run on its own
# (python -m pytest tests/test_hostile.py tests/test_damage.py --hypothesis-profile=deep)
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, suppress_health_check=_QUIET)
settings.register_profile("deep", max_examples=2500, deadline=None, suppress_health_check=_QUIET,
                          print_blob=True, database=None,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])
settings.load_profile("ci")

#: the address space each test process may use in the deep campaign: an allocation past it is a
#: MemoryError, so a bound the readers do not keep fails the example that broke it
DEEP_ADDRESS_SPACE = 4 << 30


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_profile", None) == "deep":
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (DEEP_ADDRESS_SPACE, DEEP_ADDRESS_SPACE))


def deep() -> bool:
    """The deep campaign is running (its profile loaded)."""
    return settings.default.max_examples >= 1000
