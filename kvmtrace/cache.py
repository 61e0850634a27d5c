"""Parsed traces kept as Parquet, so the second look at a big trace costs a fraction of the first.

One folder per trace under the cache directory, named by a hash of the file's
identity (absolute path, size, modification time, inode) and the cache format:
a changed or replaced file gets a new key, so a stale entry is never read.
Inside: ``events.parquet``, ``meta.json`` and, for trace.dat (whose typed fields
come from binary records that are not cached), the field columns of the events
the analyzers read, one Parquet file each; other events' fields re-read the file. Only Parquet and JSON are read back:
nothing is unpickled or evaluated. Entries are written to a temporary folder and
renamed into place, so a crash never leaves half an entry.

The cache is bounded (``limit()``: ``$KVMTRACE_CACHE_MAX``, default 4 GiB): after each write the
least recently used entries are removed until it fits. ``entries`` and ``clear`` are what
``kvmtrace cache info|clear`` show and do.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import OutputError
from .fields import BASE_COLUMNS
from .meta import TraceMeta
from .trace import Trace
from .version import __version__

#: bump when the events table, the typed frames or meta change shape
CACHE_FORMAT = 2
#: the cache's size when ``$KVMTRACE_CACHE_MAX`` does not say (bytes)
DEFAULT_LIMIT = 4 << 30
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)


def limit() -> int:
    """The cache's size bound in bytes: ``$KVMTRACE_CACHE_MAX`` (``500M``, ``4G``, ``1.5GiB`` or bytes),
    else 4 GiB. A value that does not read as a size is refused, naming it."""
    text = os.environ.get("KVMTRACE_CACHE_MAX")
    if not text:
        return DEFAULT_LIMIT
    m = _SIZE.match(text)
    if m is None:
        raise OutputError(f"KVMTRACE_CACHE_MAX={text!r}: not a size (e.g. 500M, 4G)")
    return int(float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower()))


@dataclass
class Entry:
    """One cached trace: its folder, its size and when it was last used."""

    folder: Path
    bytes: int
    used: float  # seconds since the epoch

    @property
    def trace(self) -> str:
        """The file this entry is a copy of ("?" when its meta cannot be read): read only when shown,
        so trimming after every write does not parse every entry's meta."""
        try:
            return str(json.loads((self.folder / "meta.json").read_text())["meta"]["path"])
        except (OSError, ValueError, KeyError, TypeError):
            return "?"


def entries(cache_dir: str | os.PathLike[str] | None = None) -> list[Entry]:
    """Every complete entry, least recently used first (an unreadable one counts with its size)."""
    root = folder(cache_dir)
    out = []
    try:
        folders = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".tmp-")]
    except OSError:
        return []
    for d in folders:
        meta = d / "meta.json"
        try:
            used = meta.stat().st_mtime
            size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
        except OSError:
            continue
        out.append(Entry(d, size, used))
    return sorted(out, key=lambda e: e.used)


def trim(cache_dir: str | os.PathLike[str] | None = None, bound: int | None = None,
         keep: Path | None = None) -> list[Entry]:
    """Remove the least recently used entries until the cache holds at most ``bound`` bytes (default
    ``limit()``), ``keep`` last of all; return what was removed."""
    bound = limit() if bound is None else bound
    every = entries(cache_dir)
    total = sum(e.bytes for e in every)
    order = [e for e in every if e.folder != keep] + [e for e in every if e.folder == keep]
    removed = []
    for e in order:
        if total <= bound:
            break
        shutil.rmtree(e.folder, ignore_errors=True)
        total -= e.bytes
        removed.append(e)
    return removed


def clear(cache_dir: str | os.PathLike[str] | None = None) -> list[Entry]:
    """Remove every entry (and any temporary folder a crash left); return the entries removed."""
    root = folder(cache_dir)
    every = entries(root)
    for e in every:
        shutil.rmtree(e.folder, ignore_errors=True)
    for d in root.glob(".tmp-*") if root.is_dir() else []:
        shutil.rmtree(d, ignore_errors=True)
    return every


def folder(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``default_dir()``."""
    return Path(cache_dir or default_dir())


def default_dir() -> Path:
    """``$KVMTRACE_CACHE_DIR``, else ``$XDG_CACHE_HOME/kvmtrace``, else ``~/.cache/kvmtrace``."""
    if os.environ.get("KVMTRACE_CACHE_DIR"):
        return Path(os.environ["KVMTRACE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kvmtrace"


def key(path: str | os.PathLike[str]) -> str:
    """The cache key of the file at ``path`` as it is now."""
    st = os.stat(path)
    ident = f"{os.path.realpath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{CACHE_FORMAT}\0{__version__}"
    return hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _entry(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None) -> Path:
    return folder(cache_dir) / key(path)


def _category_types(df: pd.DataFrame) -> dict[str, str]:
    return {c: str(df[c].cat.categories.dtype) for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)}


def _as_loaded(df: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Parquet gives categories back as ``str``; restore the reader's own (object or str)."""
    for c, kind in kinds.items():
        if c not in df.columns:
            continue
        if not isinstance(df[c].dtype, pd.CategoricalDtype):  # an all-null categorical comes back as objects
            df[c] = pd.Categorical.from_codes(np.full(len(df), -1, np.int8), categories=pd.Index([], dtype=object)) \
                if df[c].isna().all() else pd.Categorical(df[c])
        if kind == "object":
            df[c] = df[c].cat.rename_categories(df[c].cat.categories.astype(object))
    return df


def read(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Trace | None:
    """The cached Trace of ``path``, or None when there is no complete entry for the file as it is."""
    d = _entry(path, cache_dir)
    if not (d / "meta.json").is_file():
        return None
    try:
        doc = json.loads((d / "meta.json").read_text())
        meta = TraceMeta(**{**doc["meta"], "lost": {int(k): v for k, v in doc["meta"]["lost"].items()}})
        kinds = doc["categories"]
        events = _as_loaded(pd.read_parquet(d / "events.parquet"), kinds["events"])
        fields = {name: _as_loaded(pd.read_parquet(d / f"fields-{i}.parquet"), kinds[name])
                  for i, name in enumerate(doc["typed"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged entry is a miss; the caller reads the file and rewrites it
    meta.path = os.fspath(path)
    try:
        os.utime(d / "meta.json")  # used now: the last to go when the cache is trimmed
    except OSError:
        pass  # a read-only cache is still read
    return Trace(events, meta, None, reopen=os.fspath(path) if doc["binary"] else None, fields=fields)


def write(tr: Trace, cache_dir: str | os.PathLike[str] | None = None, fields: Sequence[str] = ()) -> Path | None:
    """Store ``tr`` (just loaded from its file) under its key, with the typed fields of the events in
    ``fields`` when they come from trace.dat records (text keeps its payload), then trim the cache to
    its bound; return the entry folder, or None when the entry alone is over the bound (not kept)."""
    root = folder(cache_dir)
    bound = limit()
    tmp: Path | None = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        d = _entry(tr.path, root)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        binary = tr.has_binary
        names = [n for n in fields if tr.has(n)] if binary else []
        tr.events.to_parquet(tmp / "events.parquet", index=False, compression="zstd")  # smaller and faster to read than snappy
        kinds = {"events": _category_types(tr.events)}
        for i, name in enumerate(names):  # seq and the fields: the base columns are in events.parquet
            typed = tr.df(name)
            part = typed[["seq", *(c for c in typed.columns if c not in BASE_COLUMNS)]]
            part.to_parquet(tmp / f"fields-{i}.parquet", index=False, compression="zstd")
            kinds[name] = _category_types(part)
        meta = tr.meta.to_dict()
        meta.pop("skipped_total"), meta.pop("lost_total")
        (tmp / "meta.json").write_text(json.dumps({"meta": meta, "typed": names, "binary": binary, "categories": kinds}))
        if d.exists():
            shutil.rmtree(d, ignore_errors=True)
        os.replace(tmp, d)
    except OSError as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"{root}: cannot write the trace cache: {exc.strerror or exc}") from exc
    removed = trim(root, bound, keep=d)
    return None if any(e.folder == d for e in removed) else d
