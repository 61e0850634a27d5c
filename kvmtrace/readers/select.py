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
    """``events`` to keep; ``fields`` maps some of them to the typed columns decoded while reading."""

    events: frozenset[str]
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{len(self.events)} event types kept"
