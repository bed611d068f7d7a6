"""Precision@k per method from human labels (with a 95% interval) and from catalog metadata."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from core.catalog.db import Catalog
from core.catalog.vectors import methods_with_vectors
from core.search.queries import search_many
from core.search.space import MethodSpace, open_space

UPLOADS = "uploaded photos"  # the by-category group of queries that are uploaded photos
NO_CATEGORY = "(no category)"

Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when there are no trials."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Tally:
    """Judged results behind one figure."""

    queries: int = 0
    relevant: int = 0
    judged: int = 0
    unknown: int = 0
    same_category: int = 0
    same_colour: int = 0
    shown: int = 0
    by_category: dict[str, Tally] = field(default_factory=dict)

    def add(self, relevant: int, judged: int, unknown: int) -> None:
        self.queries += 1
        self.relevant += relevant
        self.judged += judged
        self.unknown += unknown

    def precision(self) -> float | None:
        return self.relevant / self.judged if self.judged else None


def _item_queries(db: Catalog) -> dict[str, dict[str, bool]]:
    """Catalog-item query -> {candidate: latest judgement}."""
    found: dict[str, dict[str, bool]] = defaultdict(dict)
    for key, candidate, relevant in db.execute(
        "SELECT query_key, candidate_id, relevant FROM current_labels WHERE query_kind = 'item'"
    ):
        found[key][candidate] = bool(relevant)
    return found


def _labelled_methods(db: Catalog) -> list[str]:
    return [r[0] for r in db.execute("SELECT DISTINCT method FROM labels ORDER BY method")]


def precision_from_labels(db: Catalog, space: MethodSpace | None = None, k: int = 10) -> list[dict]:
    """Per method (or for one method's space): precision@k over labelled queries, unknowns counted
    apart, with a Wilson 95% CI.

    A catalog-item query is searched again with the method's current vectors and each of its
    top-k is looked up in the labels (a judgement counts whichever method showed the pair);
    unjudged results are `unknown`, not wrong. Uploaded-photo queries cannot be searched again,
    so their figure uses the results as shown when they were labelled (rank <= k).
    """
    if db.execute("SELECT count(*) FROM labels").fetchone()[0] == 0:
        return []
    with_vectors = methods_with_vectors(db)
    methods = [space.name] if space else sorted(set(with_vectors) | set(_labelled_methods(db)))
    queries = _item_queries(db)
    meta = {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, category, colour FROM items")}
    results = []
    for name in methods:
        tally = Tally()
        if name in with_vectors and queries:
            _tally_searched(space or open_space(db, name), k, queries, meta, tally)
        else:
            _tally_shown(db, name, k, "item", meta, tally)
        _tally_shown(db, name, k, "upload", meta, tally)
        if tally.queries:
            results.append(_summary(name, k, tally))
    return results


def _tally_searched(space: MethodSpace, k: int, queries: dict[str, dict[str, bool]], meta: dict, tally: Tally) -> None:
    for query_id, hits in search_many(space, list(queries), k):
        judged = queries[query_id]
        candidates = [h.item_id for h in hits]
        known = [judged[c] for c in candidates if c in judged]
        if not known:
            continue
        _add(tally, meta.get(query_id, (None, None)), sum(known), len(known), len(candidates) - len(known))
        _add_meta(tally, meta.get(query_id, (None, None)), [meta.get(c, (None, None)) for c in candidates])


def _tally_shown(db, method: str, k: int, kind: str, meta: dict, tally: Tally) -> None:
    rows = db.execute(
        "SELECT query_key, candidate_id, relevant FROM current_labels "
        "WHERE query_kind = ? AND method = ? AND rank <= ? ORDER BY query_key",
        (kind, method, k),
    )
    shown: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for key, candidate, relevant in rows:
        shown[key].append((candidate, relevant))
    for key, pairs in shown.items():
        query_meta = meta.get(key, (None, None)) if kind == "item" else (UPLOADS, None)
        _add(tally, query_meta, sum(r for _, r in pairs), len(pairs), max(0, k - len(pairs)))
        if kind == "item":
            _add_meta(tally, query_meta, [meta.get(c, (None, None)) for c, _ in pairs])


def _add(tally: Tally, query_meta: tuple, relevant: int, judged: int, unknown: int) -> None:
    tally.add(relevant, judged, unknown)
    category = query_meta[0] or NO_CATEGORY
    tally.by_category.setdefault(category, Tally()).add(relevant, judged, unknown)


def _add_meta(tally: Tally, query_meta: tuple, neighbours: list[tuple]) -> None:
    category, colour = query_meta
    tally.shown += len(neighbours)
    tally.same_category += sum(1 for c, _ in neighbours if category and c == category)
    tally.same_colour += sum(1 for _, c in neighbours if colour and c == colour)


def _summary(method: str, k: int, tally: Tally) -> dict:
    low, high = wilson_interval(tally.relevant, tally.judged)
    return {
        "method": method,
        "k": k,
        "queries": tally.queries,
        "labels": tally.judged,
        "unknown": tally.unknown,
        "precision_at_k": tally.precision(),
        "ci_low": low,
        "ci_high": high,
        "by_category": {
            category: {"queries": t.queries, "labels": t.judged, "precision_at_k": t.precision()}
            for category, t in sorted(tally.by_category.items())
        },
        "metadata_precision": {
            "category": tally.same_category / tally.shown if tally.shown else None,
            "colour": tally.same_colour / tally.shown if tally.shown else None,
        },
    }
