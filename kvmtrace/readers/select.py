"""What a load keeps: the event types an analysis reads, and the fields decoded while reading.

Pushed down into the readers so a huge trace costs memory for what is kept, not
for the file: text blocks and trace.dat CPU buffers are filtered as they are
read, and the kept events' fields are decoded in the reader (text payloads are
then dropped). ``seq`` stays the event's position in the whole file, so a
selective load numbers events exactly as a full one.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Selection:
    """``events`` to keep (None: every event, without its payload); ``fields`` maps some of them
    to the typed columns decoded while reading."""

    events: frozenset[str] | None
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def describe(self) -> str:
        return "every event kept, fields of some" if self.events is None else f"{len(self.events)} event types kept"

    def everything(self) -> "Selection":
        """The same fields decoded, every event kept (its time, CPU, task and flags): what a
        streamed analysis reads, so flag-bounded windows see every event as a whole load does."""
        return Selection(None, self.fields)
