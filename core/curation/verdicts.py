"""What the team's verdicts say about an item's look-alikes: accepted or rejected, per pair.

The latest judgement of a (query item, candidate) pair counts, whichever method's list showed it
(`current_labels`, query kind 'item'). `verdict()` is the one reading of a stored judgement as
accepted / rejected: every curated list, export and the Label page go through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.catalog.db import Catalog

_CHUNK = 900  # ids per IN (...) list: under SQLite's parameter limit


@dataclass
class Verdicts:
    """One query item's judged candidates."""

    accepted: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)


def verdict(relevant: int | bool | None) -> bool | None:
    """A stored judgement read as accepted (True), rejected (False) or neither (None)."""
    if relevant is None:
        return None
    return bool(relevant)


def item_verdicts(db: Catalog, item_ids: Iterable[str] | None = None) -> dict[str, Verdicts]:
    """Query item id -> its accepted and rejected candidates (every judged item when `item_ids` is None),
    read in a few batched queries."""
    sql = "SELECT query_key, candidate_id, relevant FROM current_labels WHERE query_kind = 'item'"
    if item_ids is None:
        rows = list(db.execute(sql))
    else:
        wanted = sorted({str(i) for i in item_ids})
        rows = []
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            rows += db.execute(f"{sql} AND query_key IN ({', '.join('?' * len(chunk))})", chunk).fetchall()
    found: dict[str, Verdicts] = {}
    for query, candidate, relevant in rows:
        said = verdict(relevant)
        if said is not None:
            entry = found.setdefault(query, Verdicts())
            (entry.accepted if said else entry.rejected).add(candidate)
    return found
