"""Tell trace formats apart from their first bytes, never from the file name."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import TraceFormatError

DAT_MAGIC = b"\x17\x08\x44tracing"
PERF_DATA_MAGIC = b"PERFILE2"

_LATENCY = re.compile(rb"^[ \t>]*\S.{0,7}-\d+\s+\d+[.dDXbNnpLlBhHsZz0-9]{4,5}\s+\d+(?:\.\d+)?: \S")
_BRACKET = re.compile(rb"^[ \t>]*\S.*?-\d+\s+(?:\(\s*[\d-]+\)\s+)?\[\d+\]\s+(\S{4,5}\s+)?\d+(?:\.\d+)?:\s+(\S+?):?(\s|$)")
_PERF = re.compile(rb"^[ \t>]*\S.*?\s+\d+\s+\[\d+\]\s+\d+\.\d+:\s+[\w-]+:[\w-]+:")
#: perf script of samples (cycles, page-faults, ...): a period before the event, no ``sys:``
_PERF_SAMPLE = re.compile(rb"^[ \t>]*\S.*?\s+\d+\s+\[\d+\]\s+\d+\.\d+:\s+\d+\s+[\w-]+(?::\w+)*:(\s|$)")
_PERF_SAMPLE_NO_CPU = re.compile(rb"^[ \t>]*\S.*?\s+\d+\s+\d+\.\d+:\s+\d+\s+[\w-]+(?::\w+)*:(\s|$)")
_PROLOGUE = re.compile(rb"^(cpus=\d+|version = \d+)\s*$")
_TRACEFS_HEADER = re.compile(rb"^#\s*(tracer:|entries-in-buffer|\s*TASK-PID)")


@dataclass(frozen=True)
class TextFormat:
    """A detected text format: its name, the line layout and whether events carry ``sys:``."""

    name: str
    layout: str
    perf: bool = False


TRACE_CMD = TextFormat("trace-cmd-report", "bracket")
TRACE_CMD_LATENCY = TextFormat("trace-cmd-report-latency", "latency")
TRACEFS = TextFormat("tracefs", "bracket")
PERF_SCRIPT = TextFormat("perf-script", "bracket", perf=True)


def sniff_binary(path: str, head: bytes) -> str | None:
    """'trace.dat' for trace-cmd binary files; raises for binaries kvmtrace cannot read."""
    if head.startswith(DAT_MAGIC):
        return "trace.dat"
    if head.startswith(PERF_DATA_MAGIC):
        raise TraceFormatError(path, "byte 0", "perf.data binary is not read directly; convert it with 'perf script' (tracepoints) and load the text")
    sample = head[:4096]
    control = sum(1 for b in sample if b < 9 or 13 < b < 32 or b == 127)
    if sample and control > len(sample) // 10:
        raise TraceFormatError(path, "byte 0", f"binary data ({control} control bytes in the first {len(sample)}), not a trace.dat file nor text")
    return None


def _starts_event(line: bytes) -> bool:
    return bool(_BRACKET.match(line) or _PERF.match(line) or _PERF_SAMPLE.match(line) or _LATENCY.match(line))


def _rejoined(lines: list[bytes]) -> list[bytes]:
    """The head's lines with wrapped pieces joined back (``readers.unfold`` does it exactly for the
    whole file once the format is known; here it only has to let the line shapes vote)."""
    width = max((len(x) for x in lines), default=0)
    if width < 40:
        return lines
    out: list[bytes] = []
    piece = False
    for line in lines:
        prev = out[-1] if out else b""
        full = len(prev) >= 40 or piece
        wrapped = out and line.strip() and not line.lstrip(b"> ").startswith((b"#", b"CPU")) \
            and not _starts_event(line) and (len(prev) == width or (full and prev.endswith(b" ")))
        if wrapped:
            out[-1] = prev + line.lstrip(b">").lstrip(b" ") if prev.lstrip().startswith(b">") and line.startswith(b">") \
                else prev + line
        else:
            out.append(line)
        piece = bool(wrapped)
    return out


def event_share(head: bytes) -> tuple[int, int]:
    """(event and stack-trace lines, lines that are neither blank, comments nor prologue) in the head of a text:
    notes and logs that quote a few trace lines are not traces."""
    lines = _rejoined([line.rstrip(b"\r") for line in head.split(b"\n")[:2000]])
    body = [x for x in lines if x.strip() and not x.lstrip(b"> ").startswith(b"#") and not _PROLOGUE.match(x)]
    # a kernel stack trace (" => caller") belongs to the event line above it
    return sum(1 for x in body if _starts_event(x) or x.lstrip(b"> ").startswith(b"=> ")), len(body)


def sniff_text(path: str, head: bytes) -> TextFormat:
    """Pick the text format whose line shape the first lines of ``head`` match best."""
    lines = head.split(b"\n")[:-1] if b"\n" in head else [head]
    lines = _rejoined([line.rstrip(b"\r") for line in lines[:2000]])
    votes = {TRACE_CMD: 0, TRACE_CMD_LATENCY: 0, TRACEFS: 0, PERF_SCRIPT: 0}
    prologue = header = False
    no_cpu = 0
    for line in lines:
        if _PROLOGUE.match(line):
            prologue = True
            continue
        if _TRACEFS_HEADER.match(line):
            header = True
            continue
        if _PERF.match(line) or _PERF_SAMPLE.match(line):
            votes[PERF_SCRIPT] += 1
            continue
        if _PERF_SAMPLE_NO_CPU.match(line):
            no_cpu += 1
            continue
        m = _BRACKET.match(line)
        if m:
            # trace-cmd has no flags after "[CPU]" and pads the event name; the kernel does neither
            if m.group(1) is not None:
                votes[TRACEFS] += 1
            elif re.search(rb": \S+:  ", line):
                votes[TRACE_CMD] += 1
            else:
                votes[TRACEFS if header else TRACE_CMD] += 1
            continue
        if _LATENCY.match(line):
            votes[TRACE_CMD_LATENCY] += 1
    best = max(votes, key=lambda k: votes[k])
    if no_cpu > votes[best]:
        raise TraceFormatError(path, "line 1", "perf script samples without a CPU column (a per-task perf record): "
                               "record with -a, or print the CPU with perf script -F +cpu")
    if votes[best] == 0:
        where = "line 1"
        text = lines[0][:60].decode("utf-8", "replace") if lines and lines[0] else ""
        if not head.strip():
            raise TraceFormatError(path, None, "empty file: no trace events" if not head else
                                   f"no trace events: only whitespace in the first {len(head):,} bytes")
        raise TraceFormatError(path, where, f"not a trace-cmd report, tracefs or perf script text (starts {text!r})")
    if best is TRACE_CMD and header and not prologue:
        return TRACEFS
    return best
