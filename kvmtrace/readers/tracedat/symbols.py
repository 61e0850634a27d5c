"""kallsyms, printk formats and saved cmdlines: how trace.dat pointers become names."""
from __future__ import annotations

import re

import numpy as np

_KSYM = re.compile(r"^([0-9a-fA-F]+)\s+\S\s+(\S+)", re.M)
_PRINTK = re.compile(r'^(0x[0-9a-fA-F]+)\s*:\s*"(.*)"\s*$', re.M)
_CMDLINE = re.compile(r"^(\d+)\s+(.*)$", re.M)


#: the largest offset into a function that is still named after it (kernel functions are far smaller)
MAX_OFFSET = 1 << 20


class Symbols:
    """Address → ``name+0xoff`` the way trace-cmd resolves ``%pS`` from the file's kallsyms."""

    def __init__(self, kallsyms: str) -> None:
        # one name per address; where several share one (section markers such as _stext or
        # __noinstr_text_start next to the function placed there), prefer the function's name,
        # then the alphabetically first: sorted by (address, preference, name)
        found = [(a, n) for a, n in _KSYM.findall(kallsyms) if len(a.lstrip("0")) <= 16]  # a damaged line: no 64-bit address
        addr = np.array([int(a, 16) for a, _ in found], dtype=np.uint64)
        names = np.array([n for _, n in found], dtype=object)
        pref = np.array([(n[:1] == "_") * 2 + n.endswith(("_start", "_end")) for _, n in found], dtype=np.int8)
        order = np.lexsort((pref, addr))
        addr, names, pref = addr[order], names[order], pref[order]
        # ties on (address, preference) are contiguous after the sort: order each such run by name
        start = np.flatnonzero(np.r_[True, (addr[1:] != addr[:-1]) | (pref[1:] != pref[:-1])]) if len(addr) else np.zeros(0, np.int64)
        end = np.append(start[1:], len(addr))
        for a, b in zip(start[end - start > 1], end[end - start > 1]):
            names[a:b] = sorted(names[a:b])
        first = np.r_[True, addr[1:] != addr[:-1]] if len(addr) else np.zeros(0, bool)
        keep = first & (addr != 0)
        self.addr = addr[keep]
        self.names = names[keep]
        # each name's lowest address (reversed, so the first occurrence is the one a dict keeps)
        self.by_name: dict[str, int] = dict(zip(names[::-1].tolist(), addr[::-1].tolist()))
        # a kallsyms cut short or emptied (kptr_restrict writes zeros) lacks the kernel text's bounds;
        # names from what is left would be the wrong names for the missing functions
        self.complete = bool(self.by_name.get("_stext")) and bool(self.by_name.get("_etext"))

    def address(self, name: str) -> int | None:
        return self.by_name.get(name)

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
        names[ok] = self.names[idx[ok]]
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
