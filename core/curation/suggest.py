"""Which queries to label next: the catalog items whose judgements would teach a learnt method most.

A query teaches the signal weights most where the signals disagree about its look-alikes: when
the image, colour and title signals rank its candidates differently, a judgement of its results
says which signal was right. Each unjudged item's disagreement is 1 minus the mean correlation,
over pairs of signals, of their similarities to the union of every signal's top k. The signals are a learnt method's
bases, else the method with every other embedded method of this catalog. Suggestions are the
most disagreeing items, skipping any whose vector is almost the same as one already suggested
(cosine >= `DIVERSITY`), so N suggestions cover N different looks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import sqlite_utils

from core.catalog.vectors import load_matrix, methods_with_vectors
from core.methods import get_spec
from core.methods.distances import unit
from core.methods.heads import current_head

DIVERSITY = 0.95
_BLOCK = 512


class SuggestError(ValueError):
    """Suggestions that cannot be made, in one line."""


@dataclass
class Suggestion:
    item_id: str
    disagreement: float  # 0: the signals agree about its candidates; up to 2: they rank them oppositely

    def as_dict(self) -> dict:
        return asdict(self)


def signals_of(db: sqlite_utils.Database, method: str) -> list[str]:
    """The signals whose disagreement is measured: a learnt method's bases, else `method` and every
    other embedded built-in method."""
    head = current_head(db, method)
    if head is not None:
        return list(head.bases)
    embedded = methods_with_vectors(db)
    others = [m for m in embedded if m != method and current_head(db, m) is None]
    get_spec(method, db)  # an unknown method is one clear error
    return [method, *sorted(others)]


def _top_k(matrix: np.ndarray, k: int) -> np.ndarray:
    """Each row's k nearest other rows by cosine (unordered within the k)."""
    found = np.empty((len(matrix), k), dtype=np.int64)
    for start in range(0, len(matrix), _BLOCK):
        sims = matrix[start : start + _BLOCK] @ matrix.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
        found[start : start + len(sims)] = np.argpartition(-sims, k, axis=1)[:, :k]
    return found


def disagreement(matrices: list[np.ndarray], k: int = 10) -> np.ndarray:
    """Per row: 1 - the mean correlation, over pairs of signals, of their similarities to the union
    of every signal's top k (rows aligned across matrices): 0 when the signals agree on how alike
    the candidates are, up to 2 when they rank them in opposite orders."""
    units = [unit(m) for m in matrices]
    tops = [_top_k(u, k) for u in units]
    scores = np.empty(len(units[0]))
    for row in range(len(scores)):
        candidates = np.unique(np.concatenate([t[row] for t in tops]))
        sims = np.stack([u[candidates] @ u[row] for u in units])
        sims = sims - sims.mean(axis=1, keepdims=True)
        sims /= np.maximum(np.linalg.norm(sims, axis=1, keepdims=True), 1e-12)
        corr = sims @ sims.T
        scores[row] = 1 - corr[np.triu_indices(len(units), 1)].mean()
    return scores


def pick(matrices: list[np.ndarray], n: int, skip: list[bool], k: int = 10) -> list[tuple[int, float]]:
    """The n rows (not skipped) whose signals disagree most, none almost the same look as one picked
    before (cosine >= DIVERSITY by the first signal): (row, disagreement), most useful first."""
    scores = disagreement(matrices, k)
    look = unit(matrices[0])
    chosen: list[int] = []
    for row in np.argsort(-scores, kind="stable"):
        if skip[row] or (chosen and (look[chosen] @ look[row]).max() >= DIVERSITY):
            continue
        chosen.append(int(row))
        if len(chosen) == n:
            break
    return [(r, float(scores[r])) for r in chosen]


def suggest_queries(
    db: sqlite_utils.Database, method: str, n: int = 10, k: int = 10, pool: int | None = None
) -> list[Suggestion]:
    """The n unjudged catalog items whose judgements would teach `method` most, most useful first.

    pool: look among that many unjudged items drawn at random (seeded), neighbours found among them:
    seconds instead of minutes on a large catalog (each signal compares every pair of items)."""
    if n < 1:
        raise SuggestError("ask for at least one suggestion")
    signals = signals_of(db, method)
    if len(signals) < 2:
        raise SuggestError(f"{method} has no other signal to compare with; embed another method first")
    loaded = {s: load_matrix(db, s) for s in signals}
    common = sorted(set.intersection(*(set(ids) for ids, _ in loaded.values())))
    if len(common) <= k:
        raise SuggestError(f"too few items with vectors of {', '.join(signals)}; embed them first")
    judged = {q for (q,) in db.execute("SELECT DISTINCT query_key FROM labels WHERE query_kind = 'item'")}
    if pool is not None and len(common) > pool:
        unjudged = [i for i in common if i not in judged]
        common = sorted(np.random.default_rng(0).choice(unjudged, min(pool, len(unjudged)), replace=False).tolist())
        if len(common) <= k:
            raise SuggestError("too few unjudged items left to suggest from")
    matrices = []
    for ids, matrix in loaded.values():
        row = {item_id: n for n, item_id in enumerate(ids)}
        matrices.append(matrix[[row[i] for i in common]])
    return [Suggestion(common[r], round(score, 4)) for r, score in pick(matrices, n, [i in judged for i in common], k)]
