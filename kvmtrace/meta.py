"""What kvmtrace learned about a trace besides its events (``Trace.meta``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MAX_EXAMPLES = 5


@dataclass
class TraceMeta:
    """Source format, CPUs, clock, time range, kernel hints, and what was skipped or lost.

    ``skipped`` counts lines/records that were not events, by reason; together
    with ``events`` they account for every line of a text trace.
    """

    path: str
    source_format: str
    compression: str | None = None
    cpus: int | None = None
    cpus_seen: list[int] = field(default_factory=list)
    clock: str = "unknown"
    ts_resolution_ns: int = 1
    first_ns: int | None = None
    last_ns: int | None = None
    flag_width: int = 0
    events: int = 0
    lines: int = 0
    #: events read but left out by a selective load (``load(..., select=...)``), and what it kept
    not_kept: int = 0
    selection: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[dict[str, Any]] = field(default_factory=list)
    lost: dict[int, int] = field(default_factory=dict)
    lost_markers: int = 0
    #: where events were lost: {cpu, ts (last event before the gap), count or None}
    lost_gaps: list[dict[str, Any]] = field(default_factory=list)
    empty_cpus: list[int] = field(default_factory=list)
    #: [seq, cpu] of damage the events table cannot show: an unparsable line (the seq of the event after
    #: it, cpu −1: unknown) or an event line with bytes that were not UTF-8; findings spanning one are not proven
    damaged: list[list[int]] = field(default_factory=list)
    kernel: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: the Parquet cache: "hit" (loaded from it), "written" (read from the file and stored), None (not used)
    cache: str | None = None

    @property
    def events_read(self) -> int:
        """Events in the file: those kept plus those a selective load left out."""
        return self.events + self.not_kept

    def events_text(self) -> str:
        """"N events", and how many were kept when a selective load left some out."""
        return f"{self.events_read:,} events" + (f" ({self.events:,} kept)" if self.not_kept else "")

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    def skip(self, reason: str, count: int = 1, line: int | None = None, text: str | None = None) -> None:
        """Count ``count`` skipped lines for ``reason``, keeping the first few as examples."""
        if count <= 0:
            return
        self.skipped[reason] = self.skipped.get(reason, 0) + count
        if text is not None and len(self.skipped_examples) < MAX_EXAMPLES:
            self.skipped_examples.append({"line": line, "reason": reason, "text": text[:200]})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lost"] = {str(k): v for k, v in self.lost.items()}
        d["skipped_total"] = self.skipped_total
        d["lost_total"] = self.lost_total
        return d
