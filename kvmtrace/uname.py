"""Kernel releases as ``uname -r`` prints them, parsed: the readers take one from a trace.dat's
UNAME option (which flag bits the kernel writes), the model from it or ``--kernel-release``."""
from __future__ import annotations

import re
from dataclasses import dataclass

_RELEASE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(.*)$")
#: distribution releases whose third number is an ABI number, not the stable patch level
#: (Debian and Ubuntu print 5.10.0-21-amd64 for 5.10.162)
_ABI_STYLE = re.compile(r"^-\d+")


@dataclass(frozen=True)
class Release:
    """A kernel release as ``uname -r`` prints it."""

    text: str
    version: tuple[int, int]
    patch: int | None  # None: the stable patch level is not in the string


def parse(text: str | None) -> Release | None:
    """``uname -r`` text (or a UNAME line, ``Linux host 6.1.192 x86_64``) → Release, None if unreadable."""
    if not text:
        return None
    words = text.split()
    if len(words) >= 3 and words[0] == "Linux":
        words = words[2:3]
    for word in words:
        m = _RELEASE.match(word)
        if m:
            patch = int(m.group(3)) if m.group(3) is not None else None
            if patch == 0 and _ABI_STYLE.match(m.group(4) or ""):
                patch = None
            return Release(word, (int(m.group(1)), int(m.group(2))), patch)
    return None


def release_text(text: str | None) -> str | None:
    """The release a UNAME line or ``uname -r`` text names (``6.1.192``), or the text itself when it
    names none."""
    release = parse(text)
    return release.text if release else text
