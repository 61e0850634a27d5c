"""``BinarySource``: what decoding typed fields from trace.dat records needs (formats, symbols, the
records), kept by a Trace for fields asked for later."""
from __future__ import annotations

import numpy as np

from . import header as hdr
from .formats import FormatTable
from .records import RecordStore, of_ids
from .symbols import Symbols, printk_strings


class BinarySource:
    """What typed decoding of binary records needs: formats, symbols and the records.

    kallsyms and printk formats are parsed on first use: most loads never need them.
    """

    def __init__(self, formats: FormatTable, store: RecordStore, type_id: np.ndarray,
                 dat: hdr.DatFile, seq: np.ndarray | None = None, symbols: SharedSymbols | None = None) -> None:
        self.seq = seq  # a selective read: the seq of each kept record (sorted); else seq is the row
        self.formats = formats
        self.store = store
        self.type_id = type_id
        self._printk_text = dat.printk
        self._shared = symbols or SharedSymbols(dat.kallsyms)
        self._printk: dict[int, str] | None = None

    def seq_of(self, name: str) -> np.ndarray:
        """The seq numbers of event ``name``'s records, in table order."""
        ids = [i for i, (known, _) in self.formats.names.items() if known == name]  # no format parsed for it
        rows = np.flatnonzero(of_ids(self.type_id, ids)) if ids else np.zeros(0, np.int64)
        return rows if self.seq is None else self.seq[rows]

    def rows(self, seq: np.ndarray) -> np.ndarray:
        """Record rows of events ``seq``."""
        seq = np.asarray(seq, dtype=np.int64)
        return seq if self.seq is None else np.searchsorted(self.seq, seq)

    @property
    def symbols(self) -> Symbols:
        return self._shared.get()

    @property
    def stext(self) -> int:
        return self.symbols.address("_stext") or 0

    @property
    def printk(self) -> dict[int, str]:
        if self._printk is None:
            self._printk = printk_strings(self._printk_text)
        return self._printk


class SharedSymbols:
    """A file's kallsyms, parsed on first use, once for every source given it: a streamed read
    makes a source per window (~40 ms of parsing each for a distribution kernel's kallsyms)."""

    def __init__(self, kallsyms: str) -> None:
        self._text = kallsyms
        self._parsed: Symbols | None = None

    def get(self) -> Symbols:
        if self._parsed is None:
            self._parsed = Symbols(self._text)
        return self._parsed
