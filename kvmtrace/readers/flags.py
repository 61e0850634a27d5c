"""Decode the latency flag columns (docs/kernel.md B.2) into typed columns.

Column 1 irqs-off (``d``/``D`` masked, ``b``/``D`` BH off, ``X`` unknown),
2 need-resched, 3 hardirq/softirq/NMI, 4 preempt depth (hex), 5 migrate-disable
(hex, v5.15+ only). Kernels before 5.15 print 4 columns; their migrate_disable
is NA. Other tools drop these; the analyzers need them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: Column names and pandas dtypes of the decoded flags, in table order.
FLAG_COLUMNS: dict[str, str] = {
    "irqs_off": "boolean",
    "bh_off": "boolean",
    "need_resched": "boolean",
    "hardirq": "boolean",
    "softirq": "boolean",
    "nmi": "boolean",
    "preempt_depth": "UInt8",
    "migrate_disable": "UInt8",
}


def _table(true: str, false: str) -> tuple[np.ndarray, np.ndarray]:
    """(value, known) lookup tables for one flag character."""
    val = np.zeros(256, dtype=bool)
    known = np.zeros(256, dtype=bool)
    for c in true:
        val[ord(c)] = known[ord(c)] = True
    for c in false:
        known[ord(c)] = True
    return val, known


_IRQS = _table("dD", ".b")
_BH = _table("Db", ".d")
_RESCHED = _table("NnpLlBb", ".")
_HARD = _table("hHZ", ".sz")
_SOFT = _table("sH", ".hzZ")
_NMI = _table("zZ", ".hsH")
_HEXDIG = np.full(256, -1, dtype=np.int16)
for _i, _c in enumerate("0123456789abcdef"):
    _HEXDIG[ord(_c)] = _i
_HEXDIG[ord(".")] = 0


def masked(name: str, values: np.ndarray, known: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """The pandas column for flag ``name``: NA where ``known`` is false."""
    if FLAG_COLUMNS[name] == "boolean":
        return pd.arrays.BooleanArray(values.astype(bool), ~known)
    return pd.arrays.IntegerArray(values.astype(np.uint8), ~known)


def decode_flags(chars: np.ndarray, width: np.ndarray) -> dict[str, np.ndarray]:
    """Decode an (n, 5) array of flag characters; ``width`` is 0 (no flags), 4 or 5.

    Returns numpy (values, known) pairs per column, so blocks can be concatenated
    cheaply before becoming pandas masked arrays.
    """
    n = len(width)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    has = width >= 4
    for name, (vt, kt), col in (("irqs_off", _IRQS, 0), ("need_resched", _RESCHED, 1),
                                ("hardirq", _HARD, 2), ("softirq", _SOFT, 2), ("nmi", _NMI, 2)):
        c = chars[:, col]
        out[name] = (vt[c], kt[c] & has)
    c0 = chars[:, 0]
    # 'X' (no irqflags support) leaves irqs_off unknown; the BH bit exists only where the
    # kernel prints it (v5.18+ tracefs); trace-cmd's libtraceevent never shows it.
    out["bh_off"] = (_BH[0][c0], _BH[1][c0] & has)
    for name, col, need in (("preempt_depth", 3, 4), ("migrate_disable", 4, 5)):
        d = _HEXDIG[chars[:, col]]
        known = (d >= 0) & (width >= need)
        out[name] = (np.where(known, d, 0).astype(np.uint8), known)
    for name in FLAG_COLUMNS:
        assert len(out[name][0]) == n
    return out  # type: ignore[return-value]

