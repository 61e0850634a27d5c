"""Every analyzer, in the order their results are reported. Adding one is a module declaring its
``Analyzer`` (see ``base.Analyzer``) and one line here; what a selective or streamed load keeps,
the events the cache stores fields of, and the order of finishing all follow from the list."""
from __future__ import annotations

from . import damage, exits, irqsoff, rcu, ticks, verdict
from .base import NOHZ_NEEDS, Analyzer, needs

REGISTRY: tuple[Analyzer, ...] = (
    exits.ANALYZER,
    irqsoff.ANALYZER,
    rcu.ANALYZER,
    ticks.ANALYZER,
    damage.ANALYZER,
    verdict.ENTRY,
    verdict.VERDICT,
)


def reads() -> dict[str, tuple[str, ...]]:
    """Every event any registered analyzer reads, with the fields decoded of it: what a selective
    load keeps, and whose counts identify one buffer in every format."""
    return needs(*(a.needs for a in REGISTRY))


def decoded() -> dict[str, tuple[str, ...]]:
    """The events whose typed fields are decoded while reading (and cached): those with fields, and
    those finishing reads of the whole trace (a streamed analysis keeps them whole)."""
    return {e: fields for e, fields in reads().items() if fields or e in NOHZ_NEEDS}


def finishing_order(analyzers: tuple[Analyzer, ...]) -> tuple[Analyzer, ...]:
    """``analyzers`` in an order where each finishes after those it names in ``after``; otherwise in
    their listed order."""
    names = {a.name for a in analyzers}
    for a in analyzers:
        unknown = set(a.after) - names
        if unknown:
            raise ValueError(f"analyzer {a.name} runs after unknown {sorted(unknown)}")
    done: list[Analyzer] = []
    left = list(analyzers)
    while left:
        ready = next((a for a in left if set(a.after) <= {d.name for d in done}), None)
        if ready is None:
            raise ValueError(f"analyzers wait on each other: {[a.name for a in left]}")
        done.append(ready)
        left.remove(ready)
    return tuple(done)
