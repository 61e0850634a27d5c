"""kallsyms, printk formats and saved cmdlines: how trace.dat pointers become names."""
from __future__ import annotations

import re

import numpy as np

_PRINTK = re.compile(r'^(0x[0-9a-fA-F]+)\s*:\s*"(.*)"\s*$', re.M)
_CMDLINE = re.compile(r"^(\d+)\s+(.*)$", re.M)


#: the largest offset into a function that is still named after it (kernel functions are far smaller)
MAX_OFFSET = 1 << 20
#: an address token longer than this is no kernel address (even with leading zeros): the line is skipped
_LONGEST_TOKEN = 64

_HEX = np.full(256, -1, np.int8)
_HEX[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)
_SPACE = np.zeros(256, bool)
_SPACE[[9, 11, 12, 13, 32]] = True


def _lines(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(address, name start, name end) of each ``ADDRESS TYPE NAME`` line of kallsyms text, found
    with array operations over its words (a kernel has ~100,000 symbols: a Python string per line
    and per name took half a second and 40 MB). A line of another shape, or whose address passes
    64 bits, is skipped."""
    nl = np.flatnonzero(raw == 10)
    start, end = np.r_[0, nl + 1], np.r_[nl, len(raw)]
    solid = ~_SPACE[raw] & (raw != 10)
    word = np.flatnonzero(solid & ~np.r_[False, solid[:-1]])  # where each word begins
    stop = np.flatnonzero(solid & ~np.r_[solid[1:], False]) + 1  # and ends
    past = len(raw) + 1  # no word: past the end
    word, stop = np.r_[word, past], np.r_[stop, past]

    def first(where: np.ndarray, pos: np.ndarray, side: str) -> np.ndarray:
        return where[np.minimum(np.searchsorted(where, pos, side=side), len(where) - 1)]  # type: ignore[call-overload]

    start = start[start < len(raw)]
    end = end[: len(start)]
    ok = solid[start]  # the address starts the line
    token_end = first(stop, start, "right")
    kind = first(word, token_end, "left")
    kind_end = first(stop, kind, "right")
    name = first(word, kind_end, "left")
    name_end = first(stop, name, "right")
    length = token_end - start
    ok &= (length <= _LONGEST_TOKEN) & (kind_end == kind + 1) & (name < end)  # a one-character type
    addr = np.zeros(len(start), np.uint64)
    for k in range(int(length[ok].max()) if ok.any() else 0):  # the digits from the last; past 16, only 0s
        at = np.flatnonzero(ok & (length > k))
        d = _HEX[raw[token_end[at] - 1 - k]]
        ok[at[(d < 0) | ((d != 0) & (k >= 16))]] = False
        if k < 16:
            addr[at] |= np.maximum(d, 0).astype(np.uint64) << np.uint64(4 * k)
    return addr[ok], name[ok], name_end[ok]


class Symbols:
    """Address → ``name+0xoff`` the way trace-cmd resolves ``%pS`` from the file's kallsyms.

    Names stay bytes of the kallsyms text until an address resolves to them."""

    def __init__(self, kallsyms: str) -> None:
        self._text = kallsyms.encode("utf-8", "surrogateescape")
        raw = np.frombuffer(self._text, np.uint8)
        addr, first, last = _lines(raw)
        # one name per address; where several share one (section markers such as _stext or
        # __noinstr_text_start next to the function placed there), prefer the function's name,
        # then the alphabetically first: sorted by (address, preference, name)
        pref = (raw[first] == ord("_")).astype(np.int8) * 2 + (self._ends(raw, first, last, b"_start")
                                                                | self._ends(raw, first, last, b"_end"))
        order = np.lexsort((pref, addr))
        addr, first, last, pref = addr[order], first[order], last[order], pref[order]
        # ties on (address, preference) are contiguous after the sort: order each such run by name
        tie = np.flatnonzero(np.r_[True, (addr[1:] != addr[:-1]) | (pref[1:] != pref[:-1])]) if len(addr) else \
            np.zeros(0, np.int64)
        tie_end = np.append(tie[1:], len(addr))
        for a, b in zip(tie[tie_end - tie > 1], tie_end[tie_end - tie > 1]):
            by = sorted(range(a, b), key=lambda i: self._text[first[i]:last[i]])
            first[a:b], last[a:b] = first[by], last[by]
        self._all = (addr, first, last)  # every line, sorted: each name's lowest address (``address``)
        keep = np.r_[True, addr[1:] != addr[:-1]] & (addr != 0) if len(addr) else np.zeros(0, bool)
        self.addr, self._first, self._last = addr[keep], first[keep], last[keep]
        # a kallsyms cut short or emptied (kptr_restrict writes zeros) lacks the kernel text's bounds;
        # names from what is left would be the wrong names for the missing functions
        self.complete = bool(self.address("_stext")) and bool(self.address("_etext"))

    @staticmethod
    def _ends(raw: np.ndarray, first: np.ndarray, last: np.ndarray, suffix: bytes) -> np.ndarray:
        n = len(suffix)
        out = last - first >= n
        for i, byte in enumerate(suffix):
            out[out] &= raw[last[out] - n + i] == byte
        return out

    def address(self, name: str) -> int | None:
        """The lowest address of ``name`` (0 where kptr_restrict zeroed it), None when absent."""
        want = name.encode("utf-8", "surrogateescape")
        addr, first, last = self._all
        for i in np.flatnonzero(last - first == len(want)):
            if self._text[first[i]:last[i]] == want:
                return int(addr[i])
        return None

    def resolve(self, addr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(names as object array, offsets; -1 where unresolved and the name is the hex address).

        An address is named only from a kallsyms that has the kernel text's bounds (``_stext``,
        ``_etext``) and less than ``MAX_OFFSET`` past its symbol: otherwise the kallsyms is damaged
        or cut, and the name would be wrong (callers decide code paths)."""
        addr = addr.astype(np.uint64)
        idx = np.searchsorted(self.addr, addr, side="right") - 1 if len(self.addr) else np.full(len(addr), -1)
        ok = (idx >= 0) & self.complete
        ok[ok] = (addr[ok] - self.addr[idx[ok]]) < MAX_OFFSET
        names = np.empty(len(addr), dtype=object)
        offs = np.full(len(addr), -1, dtype=np.int64)
        used, inverse = np.unique(idx[ok], return_inverse=True)
        text = self._text
        named = np.array([text[self._first[i]:self._last[i]].decode("utf-8", "surrogateescape") for i in used] + [""],
                         dtype=object)
        names[ok] = named[inverse.ravel()] if len(used) else names[ok]
        offs[ok] = (addr[ok] - self.addr[idx[ok]]).astype(np.int64)
        for i in np.flatnonzero(~ok):
            names[i] = hex(int(addr[i]))
        return names, offs


def printk_strings(text: str) -> dict[int, str]:
    """``printk_formats``: pointer → string (tracepoint string constants such as RCU polarity)."""
    return {int(a, 16): s.replace("\\n", "\n") for a, s in _PRINTK.findall(text)}


def cmdlines(text: str) -> dict[int, str]:
    """saved_cmdlines: pid → comm."""
    return {int(p): c for p, c in _CMDLINE.findall(text)}
