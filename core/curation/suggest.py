"""Which queries to label next: the catalog items whose judgements would teach a learnt method most.

A learnt method generalises from its judged queries to the items that look like them, so the
labels teach most when the judged queries stand for as much of the catalog as possible. The items
are grouped into look-alike groups (k-means on the method's vectors, or on its bases' fused
vectors for a learnt method, reduced to at most `DIMS` principal directions); a group that already
holds a judged query is covered, and each other group proposes its most typical unjudged item (the
one nearest its centre), biggest groups first. Measured with simulated judges on items the method
never saw (docs/benchmarks.md, "Which queries to label"): N such queries teach more than N random
ones, and more than the queries whose signals disagree most about their look-alikes (which tend
to be odd items that stand for few others).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import sqlite_utils

from core.catalog.vectors import load_matrix
from core.methods import get_spec
from core.methods.distances import unit, weighted_concat
from core.methods.heads import current_head

DIMS = 64


class SuggestError(ValueError):
    """Suggestions that cannot be made, in one line."""


@dataclass
class Suggestion:
    item_id: str
    group_size: int  # the unjudged items of its look-alike group, itself included

    def as_dict(self) -> dict:
        return asdict(self)


def signals_of(db: sqlite_utils.Database, method: str) -> list[str]:
    """The methods whose vectors group the items: a learnt method's bases, else the method itself."""
    head = current_head(db, method)
    if head is not None:
        return list(head.bases)
    get_spec(method, db)  # an unknown method is one clear error
    return [method]


def _reduced(matrix: np.ndarray) -> np.ndarray:
    """At most DIMS principal directions of the rows (seeded), for a quick k-means."""
    from sklearn.decomposition import PCA

    dims = min(DIMS, *matrix.shape)
    return PCA(dims, random_state=0).fit_transform(matrix) if dims < matrix.shape[1] else matrix


def pick(matrices: list[np.ndarray], n: int, judged: list[bool]) -> list[tuple[int, int]]:
    """Up to n unjudged rows standing for the most items: (row, size of its group), biggest first.

    The rows (aligned across matrices, fused with equal weights) are cut into n + (judged rows)
    k-means groups; groups holding a judged row are skipped, each other gives its row nearest the
    group's centre."""
    from sklearn.cluster import KMeans

    judged = np.asarray(judged, dtype=bool)
    look = _reduced(weighted_concat([unit(m) for m in matrices], [1 / len(matrices)] * len(matrices)))
    groups = KMeans(min(n + int(judged.sum()), len(look)), n_init=1, random_state=0).fit(look)
    found = []
    for group in range(groups.n_clusters):
        members = np.flatnonzero(groups.labels_ == group)
        if judged[members].any():
            continue
        spread = np.linalg.norm(look[members] - groups.cluster_centers_[group], axis=1)
        found.append((int(members[np.argmin(spread)]), len(members)))
    return sorted(found, key=lambda pair: (-pair[1], pair[0]))[:n]


def suggest_queries(db: sqlite_utils.Database, method: str, n: int = 10, pool: int | None = None) -> list[Suggestion]:
    """The n unjudged catalog items whose judgements would teach `method` most, most useful first.

    pool: group that many items drawn at random (seeded; judged queries always among them):
    seconds instead of minutes on a large catalog."""
    if n < 1:
        raise SuggestError("ask for at least one suggestion")
    signals = signals_of(db, method)
    loaded = {s: load_matrix(db, s) for s in signals}
    common = sorted(set.intersection(*(set(ids) for ids, _ in loaded.values())))
    judged = {q for (q,) in db.execute("SELECT DISTINCT query_key FROM labels WHERE query_kind = 'item'")}
    if not set(common) - judged:
        raise SuggestError(f"no unjudged item has vectors of {', '.join(signals)}; embed them first")
    if pool is not None and len(common) > pool:
        unjudged = sorted(set(common) - judged)
        drawn = np.random.default_rng(0).choice(unjudged, min(pool, len(unjudged)), replace=False).tolist()
        common = sorted(set(drawn) | (judged & set(common)))
    matrices = []
    for ids, matrix in loaded.values():
        position = {item_id: r for r, item_id in enumerate(ids)}
        matrices.append(matrix[[position[i] for i in common]])
    return [Suggestion(common[r], size) for r, size in pick(matrices, n, [i in judged for i in common])]
