"""Typed fields per event type, decoded from the printed payload (lazily, per type)."""
from __future__ import annotations

import pandas as pd


def decode_event(name: str, rows: pd.DataFrame) -> pd.DataFrame:
    return rows.reset_index(drop=True)
