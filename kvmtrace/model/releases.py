"""Kernel releases, where the trace cannot show the code path itself.

On x86 the two placements of the end of guest timing emit the same events
(docs/kernel.md F): only the release tells whether the host-IRQ window after
a VM-exit was still guest time. The release comes from ``--kernel-release`` (as
``uname -r`` prints it) or from the trace.dat's UNAME option.
"""
from __future__ import annotations

from ..uname import Release

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
