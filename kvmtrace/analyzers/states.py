"""The values a finding's confidence and a verdict take: named once, compared as names.

Both are ``StrEnum``s, so they equal the strings the ``--json`` documents and the frames carry
(``Confidence.PROVEN == "proven"``) and print as them.
"""
from __future__ import annotations

from enum import StrEnum


class Confidence(StrEnum):
    """How sure a finding is: ``PROVEN`` when this trace's events show it on the kernel's own code
    path; ``INFERRED`` when it rests on an estimate, damage, a trace edge or an unknown release."""

    PROVEN = "proven"
    INFERRED = "inferred"


class Verdict(StrEnum):
    """Which path the traced kernel runs, for one bug class or overall."""

    PRE_FIX = "pre-fix"
    FIXED = "fixed"
    UNKNOWN = "unknown"
