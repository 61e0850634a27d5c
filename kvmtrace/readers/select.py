"""What a load keeps: the event types an analysis reads, and the fields decoded while reading.

Pushed down into the readers so a huge trace costs memory for what is kept, not
for the file: text blocks and trace.dat CPU buffers are filtered as they are
read, and the kept events' fields are decoded in the reader (text payloads are
then dropped). ``seq`` stays the event's position in the whole file, so a
selective load numbers events exactly as a full one.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

#: (event name, its printed payloads as an Arrow string array, columns) → typed columns
TextDecoder = Callable[[str, Any, tuple[str, ...]], Any]
#: (event name, record seqs, the trace.dat's BinarySource, columns) → typed columns
BinaryDecoder = Callable[[str, Any, Any, tuple[str, ...]], Any]


@dataclass(frozen=True)
class Selection:
    """``events`` to keep (None: every event, without its payload); ``fields`` maps some of them
    to the typed columns decoded while reading, by the decoders the layer above hands in
    (``fields.selection``): the readers know how to find a payload, not what its fields are."""

    events: frozenset[str] | None
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    decode_text: TextDecoder | None = None
    decode_binary: BinaryDecoder | None = None

    def decoder(self, kind: str) -> Any:
        """The decoder of ``kind`` ("text" or "binary"); a selection naming fields must have one."""
        got = self.decode_text if kind == "text" else self.decode_binary
        if got is None:
            raise ValueError(f"a selection that names fields needs a {kind} decoder (kvmtrace.fields.selection)")
        return got

    def describe(self) -> str:
        return "every event kept, fields of some" if self.events is None else f"{len(self.events)} event types kept"

    def everything(self) -> "Selection":
        """The same fields decoded, every event kept (its time, CPU, task and flags): what a
        streamed analysis reads, so flag-bounded windows see every event as a whole load does."""
        return replace(self, events=None)
