"""Shared fixtures: paths to the real traces and trace-cmd as the reference oracle."""
from __future__ import annotations

import collections
import functools
import os
import re
import shutil
import signal
import tempfile
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


_EVENT_LINE = re.compile(rb"\d+\.\d+:\s+\w+:")  # an event line in any -N/-t/-l form


def _run_report(dat: str, flags: tuple[str, ...]) -> tuple[int, bytes, bytes]:
    """One ``trace-cmd report``: exit status, stdout, stderr.

    It runs in its own session with SIGINT and SIGTERM blocked: trace-cmd catches SIGINT and exits 0
    with whatever it printed so far, so a signal meant for someone else (CI sends some to the whole
    machine) would otherwise turn the reference into a shorter trace. A blocked signal stays pending
    until the child exits and is never delivered."""
    with tempfile.TemporaryDirectory(prefix="oracle-") as tmp:
        out, err = Path(tmp, "out"), Path(tmp, "err")
        flags_w = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        pid = os.posix_spawn(_trace_cmd(), [_trace_cmd(), "report", *flags, dat], os.environ,
                             file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                           (os.POSIX_SPAWN_OPEN, 1, str(out), flags_w, 0o600),
                                           (os.POSIX_SPAWN_OPEN, 2, str(err), flags_w, 0o600)],
                             setsid=True, setsigmask={signal.SIGINT, signal.SIGTERM})
        try:
            _pid, status = os.waitpid(pid, 0)
        except BaseException:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        return os.waitstatus_to_exitcode(status), out.read_bytes(), err.read_bytes()


@functools.lru_cache(maxsize=None)
def trace_cmd_report(dat: str, *flags: str) -> str:
    """``trace-cmd report FLAGS dat`` output (cached per session).

    A report is the reference only when trace-cmd exited 0, did not say it was interrupted, and
    printed at least one event line ending in a newline; otherwise it runs again, and after three
    such runs it is an error that quotes trace-cmd, never an empty or cut reference."""
    for _attempt in range(3):
        rc, out, err = _run_report(dat, flags)
        if rc == 0 and b"Received SIGINT" not in err and out.endswith(b"\n") and _EVENT_LINE.search(out):
            return out.decode("utf-8", "replace")
    raise RuntimeError(f"trace-cmd report {dat} exited {rc} after printing {len(out)} bytes, "
                       f"stderr: {err.decode(errors='replace')!r}")


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
