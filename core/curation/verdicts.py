"""Which verdict counts for a pair: everyone's latest, or a curator's, or one rater's own; and what
the counting verdicts say about an item's look-alikes in the shop (accepted or rejected).

A pair is (query kind, query key, candidate). Each labeller's latest verdict on a pair is their
verdict; the pair's counting verdict is the latest of anyone's, unless the curator
(`LOOKALIKE_CURATOR`) judged it: then the curator's latest counts. It counts whichever method's
list showed the pair. For the shop (`item_verdicts`), a counting *good* accepts the candidate, a
*wrong* rejects it, and a *close* does neither: the candidate stays where the model ranks it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.catalog.db import Catalog
from core.curation.grades import GOOD, WRONG, grade_of
from core.settings import settings

Pair = tuple[str, str, str]  # query_kind, query_key, candidate_id
_CHUNK = 900  # ids per IN (...) list: under SQLite's parameter limit
_COLUMNS = "query_kind, query_key, candidate_id, relevant, grade, labeler"


@dataclass
class Verdicts:
    """Every labeller's latest grade per pair, and the grade that counts per pair."""

    counting: dict[Pair, str] = field(default_factory=dict)
    by_rater: dict[str, dict[Pair, str]] = field(default_factory=dict)
    curator: str | None = None
    counted_from: dict[Pair, str] = field(default_factory=dict)  # whose verdict counts, per pair

    def rule(self) -> str:
        """The rule in words, as the pages and commands state it."""
        if self.curator:
            return f"the curator {self.curator}'s latest verdict where they judged the pair, else the latest verdict"
        return "the latest verdict on each pair, whoever gave it"

    def per_query(self, pairs: dict[Pair, str] | None = None) -> dict[tuple[str, str], dict[str, str]]:
        """(query kind, key) -> {candidate: grade}, from `pairs` (the counting verdicts by default)."""
        found: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        for (kind, key, candidate), grade in (self.counting if pairs is None else pairs).items():
            found[(kind, key)][candidate] = grade
        return dict(found)

    def raters(self) -> list[str]:
        return sorted(self.by_rater)


def read_verdicts(db: Catalog, curator: str | None = None) -> Verdicts:
    """Read the label history once (oldest first) into latest verdicts per labeller and per pair."""
    rows = db.execute(f"SELECT {_COLUMNS} FROM labels ORDER BY created_at, id")
    return _folded(rows, curator if curator is not None else settings().curator)


def _folded(rows: Iterable[tuple], curator: str | None) -> Verdicts:
    """Label rows (`_COLUMNS`, each pair's oldest first) folded into the latest verdicts and the counting ones."""
    verdicts = Verdicts(curator=curator)
    curated: dict[Pair, str] = {}
    for kind, key, candidate, relevant, grade, labeler in rows:
        pair, graded = (kind, key, candidate), grade_of(relevant, grade)
        verdicts.by_rater.setdefault(labeler, {})[pair] = graded
        verdicts.counting.pop(pair, None)  # re-inserted last: the dict keeps the order of latest verdicts
        verdicts.counting[pair] = graded
        verdicts.counted_from[pair] = labeler
        if curator and labeler == curator:
            curated[pair] = graded
    if curator:  # the curator's latest verdicts count over everyone's
        verdicts.counting.update(curated)
        verdicts.counted_from.update(dict.fromkeys(curated, curator))
    return verdicts


@dataclass
class ItemVerdicts:
    """One query item's candidates that the counting verdicts accept (good) or reject (wrong)."""

    accepted: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)


def item_verdicts(db: Catalog, item_ids: Iterable[str] | None = None) -> dict[str, ItemVerdicts]:
    """Query item id -> its accepted and rejected candidates under the counting rule (every judged item
    when `item_ids` is None), read in a few batched queries."""
    sql = f"SELECT {_COLUMNS} FROM labels WHERE query_kind = 'item'"
    order = " ORDER BY created_at, id"
    if item_ids is None:
        rows = list(db.execute(sql + order))
    else:  # each query item's labels fall in one chunk, oldest first
        wanted = sorted({str(i) for i in item_ids})
        rows = []
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            rows += db.execute(f"{sql} AND query_key IN ({', '.join('?' * len(chunk))}){order}", chunk).fetchall()
    counting = _folded(rows, settings().curator).counting
    found: dict[str, ItemVerdicts] = {}
    for (_, query, candidate), graded in counting.items():
        if graded in (GOOD, WRONG):
            entry = found.setdefault(query, ItemVerdicts())
            (entry.accepted if graded == GOOD else entry.rejected).add(candidate)
    return found
