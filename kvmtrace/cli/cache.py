"""``kvmtrace cache info|clear``: what the Parquet cache holds, and emptying it."""
from __future__ import annotations

import json
import time

import click

from .contract import one_line_errors
from .params import CACHE_DIR


@click.group()
def cache() -> None:
    """Show or empty the Parquet cache of parsed traces.

    The cache is bounded by $KVMTRACE_CACHE_MAX (default 4G): the least recently used traces go first.
    """


@cache.command()
@CACHE_DIR
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@one_line_errors
def info(cache_dir: str | None, as_json: bool) -> None:
    """Where the cache is, its bound, and each entry: the trace, its size, when it was last used."""
    from .. import cache as store
    from ..tables import render

    root, bound, every = store.folder(cache_dir), store.limit(), store.entries(cache_dir)
    total = sum(e.bytes for e in every)
    if as_json:
        click.echo(json.dumps({"folder": str(root), "limit_bytes": bound, "bytes": total,
                               "entries": [{"trace": e.trace, "bytes": e.bytes, "used": e.used, "key": e.folder.name}
                                           for e in reversed(every)]}, indent=2))
        return
    click.echo(f"{root}: {len(every):,} traces, {total / 2**20:,.1f} MiB of {bound / 2**20:,.0f} MiB")
    if every:
        click.echo(render(["trace", "MiB", "last used"],
                          [[e.trace, f"{e.bytes / 2**20:,.1f}", time.strftime("%Y-%m-%d %H:%M", time.localtime(e.used))]
                           for e in reversed(every)]))


@cache.command()
@CACHE_DIR
@one_line_errors
def clear(cache_dir: str | None) -> None:
    """Remove every cached trace."""
    from .. import cache as store

    gone = store.clear(cache_dir)
    click.echo(f"removed {len(gone):,} cached traces ({sum(e.bytes for e in gone) / 2**20:,.1f} MiB)")
