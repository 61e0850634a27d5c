"""kallsyms, printk formats and saved cmdlines: how trace.dat pointers become names."""
from __future__ import annotations

import re

import numpy as np

_KSYM = re.compile(r"^([0-9a-fA-F]+)\s+\S\s+(\S+)", re.M)
_PRINTK = re.compile(r'^(0x[0-9a-fA-F]+)\s*:\s*"(.*)"\s*$', re.M)
_CMDLINE = re.compile(r"^(\d+)\s+(.*)$", re.M)


class Symbols:
    """Address → ``name+0xoff`` the way trace-cmd resolves ``%pS`` from the file's kallsyms."""

    def __init__(self, kallsyms: str) -> None:
        # one name per address; where several share one (section markers such as _stext or
        # __noinstr_text_start next to the function placed there), prefer the function's name
        pairs = sorted({(int(a, 16), n) for a, n in _KSYM.findall(kallsyms)},
                       key=lambda p: (p[0], p[1].startswith("_"), p[1].endswith(("_start", "_end")), p[1]))
        addrs, names, seen = [], [], set()
        for a, n in pairs:
            if a in seen or a == 0:
                continue
            seen.add(a)
            addrs.append(a)
            names.append(n)
        self.addr = np.array(addrs, dtype=np.uint64)
        self.names = np.array(names, dtype=object)
        self.by_name: dict[str, int] = {}
        for a, n in pairs:
            self.by_name.setdefault(n, a)

    def address(self, name: str) -> int | None:
        return self.by_name.get(name)

    def resolve(self, addr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(names as object array, offsets; -1 where unresolved and the name is the hex address)."""
        addr = addr.astype(np.uint64)
        idx = np.searchsorted(self.addr, addr, side="right") - 1 if len(self.addr) else np.full(len(addr), -1)
        ok = idx >= 0
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
