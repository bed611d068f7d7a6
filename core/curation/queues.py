"""Pairs to judge next, one click each on the Label page: a second opinion on pairs one person
judged, the pairs raters disagree on, the gap that keeps methods from being compared, and the
results a snapshot brought that nobody has judged."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.catalog.db import Catalog
from core.catalog.vectors import methods_with_vectors
from core.curation.agreement import agreement, second_opinion
from core.curation.metrics import GapPair, method_lists, pooled_gap
from core.curation.snapshots import diff_snapshots
from core.curation.verdicts import Pair, read_verdicts
from core.search.space import open_space


@dataclass(frozen=True)
class QueuedPair:
    """A catalog-item pair to judge, the method and rank its verdict is recorded under, and what is
    known of it already (each rater's verdict, for a disagreement; nothing for a blind second opinion)."""

    query_key: str
    candidate_id: str
    method: str
    rank: int
    known: str = ""


def _shown_as(db: Catalog, pair: Pair) -> tuple[str, int]:
    """The method and rank a pair was last labelled under."""
    row = db.execute(
        "SELECT method, rank FROM labels WHERE query_kind = ? AND query_key = ? AND candidate_id = ? "
        "ORDER BY created_at DESC, id DESC LIMIT 1",
        pair,
    ).fetchone()
    return (row[0], row[1]) if row else ("", 1)


def second_opinion_queue(db: Catalog, labeler: str, limit: int = 10) -> list[QueuedPair]:
    """Pairs only one other person judged, query by query; their verdict is not shown (a blind second opinion)."""
    found = second_opinion(read_verdicts(db), (labeler or "").strip())[:limit]
    return [QueuedPair(pair[1], pair[2], *_shown_as(db, pair)) for pair, _, _ in found]


def disagreement_queue(db: Catalog, labeler: str, limit: int = 10) -> list[QueuedPair]:
    """Pairs with conflicting verdicts that `labeler` has not settled (their verdict is not the one that counts)."""
    verdicts = read_verdicts(db)
    found = [
        d
        for d in agreement(verdicts).disagreements
        if d.pair[0] == "item" and verdicts.counted_from.get(d.pair) != (labeler or "").strip()
    ][:limit]
    return [
        QueuedPair(
            d.pair[1],
            d.pair[2],
            *_shown_as(db, d.pair),
            known=" · ".join(f"{rater}: {grade}" for rater, grade in d.grades.items()) + f" · counts: {d.counting}",
        )
        for d in found
    ]


def gap_queue(db: Catalog, methods: Iterable[str], k: int = 10, limit: int = 10) -> tuple[list[QueuedPair], int]:
    """The compared methods' unjudged results on the judged queries, pooled (each pair once), query by
    query; and how many there are in all."""
    known = read_verdicts(db).per_query()
    with_vectors = methods_with_vectors(db)
    lists = {
        name: method_lists(db, open_space(db, name) if name in with_vectors else None, name, k, known)
        for name in methods
    }
    pooled: list[GapPair] = pooled_gap(lists, known)
    return [QueuedPair(p.query_key, p.candidate_id, p.method, p.rank) for p in pooled[:limit]], len(pooled)


def snapshot_queue(db: Catalog, first: str, second: str, limit: int = 10) -> tuple[list[QueuedPair], int]:
    """The results `second` has and `first` had not, that nobody has judged; and how many in all."""
    new = diff_snapshots(db, first, second).unjudged
    return [QueuedPair(p.query_key, p.candidate_id, p.method, p.rank) for p in new[:limit]], len(new)
