"""Kernel releases, where the trace cannot show the code path itself.

On x86 the two placements of the end of guest timing emit the same events
(kernel-semantics.md F): only the release tells whether the host-IRQ window after
a VM-exit was still guest time. The release comes from ``--kernel-release`` (as
``uname -r`` prints it) or from the trace.dat's UNAME option.
"""
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


#: x86 releases where guest timing ended in vmx/svm_vcpu_enter_exit(), before the host-IRQ
#: window: from 87fa7f3e98a1 (v5.9) until 160457140187 (v5.13, stable 5.12.8 and 5.10.41)
_X86_EARLY = {(5, 9): None, (5, 10): 41, (5, 11): None, (5, 12): 8}


def x86_window_is_guest_time(release: Release | None) -> tuple[bool | None, str]:
    """Whether x86 ticks handled in the host-IRQ window after a VM-exit are guest time, and why.

    None when the release is unknown, or when its patch level decides and is not in the string.
    """
    if release is None:
        return None, ("x86 charges ticks in the host-IRQ window after a VM-exit to the guest from 5.13 "
                      "(5.12.8, 5.10.41) and to the host on 5.9 up to those; the trace does not record "
                      "the kernel release (pass --kernel-release)")
    v = release.version
    if v > (5, 12):
        return True, (f"release {release.text}: guest timing ends after the host-IRQ window "
                      "(guest_timing_exit_irqoff() after vcpu_enter_guest()'s window, 5.13 on)")
    if v < (5, 9):
        return True, (f"release {release.text}: guest timing ends after the host-IRQ window "
                      "(guest_exit_irqoff() in vcpu_enter_guest(), before 5.9)")
    fixed_from = _X86_EARLY[v]
    if fixed_from is None:
        return False, (f"release {release.text}: guest timing ends in vmx/svm_vcpu_enter_exit(), before the "
                       "host-IRQ window (5.9 up to 5.12.8 / 5.10.41)")
    if release.patch is None:
        return None, (f"release {release.text}: {v[0]}.{v[1]}.{fixed_from} moved the end of guest timing after the "
                      "host-IRQ window, and this release string does not say its stable patch level")
    if release.patch >= fixed_from:
        return True, (f"release {release.text}: guest timing ends after the host-IRQ window "
                      f"(160457140187, backported to {v[0]}.{v[1]}.{fixed_from})")
    return False, (f"release {release.text}: guest timing ends in vmx/svm_vcpu_enter_exit(), before the host-IRQ "
                   f"window (fixed in {v[0]}.{v[1]}.{fixed_from})")
