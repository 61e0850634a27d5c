"""The ``kvmtrace`` command line: one module per command, errors as one line, exit 2."""
from __future__ import annotations

from .main import main

__all__ = ["main"]
