"""Trace arguments: a file, a folder of traces, a glob, or several of them joined by commas."""
from __future__ import annotations

import glob
import os

from ..errors import TraceFormatError
from ..readers import is_trace

#: files in a folder that are never traces, skipped without sniffing
_NOT_TRACES = (".json", ".md", ".sh", ".py", ".png", ".svg", ".parquet", ".ipynb")


def expand(arg: str) -> list[str]:
    """The trace files ``arg`` names, in a stable order; a one-line error if it names none."""
    out: list[str] = []
    for part in (p for p in arg.split(",") if p):
        if os.path.isdir(part):
            found = [os.path.join(part, f) for f in sorted(os.listdir(part))
                     if not f.startswith(".") and not f.endswith(_NOT_TRACES) and is_trace(os.path.join(part, f))]
            if not found:
                raise TraceFormatError(part, None, "folder holds no trace files")
            out += found
        elif any(c in part for c in "*?[") and not os.path.exists(part):
            found = sorted(p for p in glob.glob(part) if os.path.isfile(p))
            if not found:
                raise TraceFormatError(part, None, "pattern matches no files")
            out += found
        else:
            out.append(part)  # a missing file is reported by the reader, with its name
    if not out:
        raise TraceFormatError(arg, None, "names no trace")
    return out
