"""Which queries to label next: the catalog items whose judgements would teach a learnt method most.

A judgement teaches most where the method is unsure of an item's look-alikes, but the item is
not an odd one out. For each unjudged item, its current top k by the method's signals (fused with
equal weights) is compared with the item by the *judging* signals: the titles' text (the text
methods among the signals, else any text method embedded in the catalog, else the signals
themselves). Their mean cosine is the item's *agreement*: high when the titles confirm the
look-alikes (its judgements would mostly say yes: little to learn), lowest for odd items whose
titles match nothing near them (their judgements say little about other items). Suggestions are
the items whose agreement is nearest the lower quartile (`QUANTILE`), skipping any whose vector is
almost the same as one already suggested (cosine >= `DIVERSITY`). Measured with simulated judges
on items the method never saw (docs/benchmarks.md, "Which queries to label").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from core.catalog.db import Catalog
from core.catalog.items import item_cards
from core.catalog.vectors import load_matrix, methods_with_vectors
from core.methods import get_spec
from core.methods.distances import unit, weighted_concat
from core.methods.heads import current_head
from core.search.neighbours import nearest_rows

QUANTILE = 0.25
DIVERSITY = 0.95
_BLOCK = 512


class SuggestError(ValueError):
    """Suggestions that cannot be made, in one line."""


@dataclass
class Suggestion:
    item_id: str
    agreement: float  # mean cosine, by the judging signals, between the item and its current top k
    title: str | None = None  # what a person recognises the item by

    def as_dict(self) -> dict:
        return asdict(self)


def signals_of(db: Catalog, method: str) -> tuple[list[str], list[str]]:
    """(ranking signals, judging signals): a learnt method's bases, else the method itself; the text
    methods among them, else any embedded text method, else the ranking signals."""
    head = current_head(db, method)
    ranking = list(head.bases) if head is not None else [method]
    kinds = {name: get_spec(name, db).kind for name in ranking}  # an unknown method is one clear error
    text = [name for name in ranking if kinds[name] == "text"]
    if not text:
        text = sorted(m for m in methods_with_vectors(db) if m not in ranking and _is_text(db, m))
    return ranking, text or ranking


def _is_text(db: Catalog, name: str) -> bool:
    try:
        return get_spec(name, db).kind == "text"
    except ValueError:
        return False


def agreement(ranking: np.ndarray, judges: list[np.ndarray], k: int = 10) -> np.ndarray:
    """Per row: the mean cosine, by each judging matrix (averaged), between the row and its k nearest
    other rows by `ranking` (rows aligned across matrices)."""
    top = nearest_rows(ranking, np.arange(len(ranking)), k)
    scores = np.zeros(len(top))
    for judge in map(unit, judges):
        for start in range(0, len(top), _BLOCK):  # a block of rows at a time: rows x k x dims stays small
            rows = slice(start, start + _BLOCK)
            scores[rows] += np.einsum("id,ikd->i", judge[rows], judge[top[rows]]) / k
    return scores / len(judges)


def pick(ranking: np.ndarray, judges: list[np.ndarray], n: int, judged: list[bool], k: int = 10) -> list:
    """The n unjudged rows whose agreement is nearest the lower quartile, none almost the same look as
    one picked before: (row, agreement), nearest first."""
    done = np.asarray(judged, dtype=bool)
    scores = agreement(ranking, judges, k)
    target = np.quantile(scores[~done], QUANTILE)
    look = unit(ranking)
    chosen: list[int] = []
    for row in np.argsort(np.abs(scores - target), kind="stable"):
        if done[row] or (chosen and (look[chosen] @ look[row]).max() >= DIVERSITY):
            continue
        chosen.append(int(row))
        if len(chosen) == n:
            break
    return [(r, float(scores[r])) for r in chosen]


def suggest_queries(db: Catalog, method: str, n: int = 10, k: int = 10, pool: int | None = None) -> list[Suggestion]:
    """The n unjudged catalog items whose judgements would teach `method` most, most useful first.

    pool: look among that many unjudged items drawn at random (seeded), neighbours found among them:
    seconds instead of minutes on a large catalog."""
    if n < 1:
        raise SuggestError("ask for at least one suggestion")
    ranking, judging = signals_of(db, method)
    loaded = {s: load_matrix(db, s) for s in dict.fromkeys(ranking + judging)}
    common = sorted(set.intersection(*(set(ids) for ids, _ in loaded.values())))
    judged = {q for (q,) in db.execute("SELECT DISTINCT query_key FROM labels WHERE query_kind = 'item'")}
    if pool is not None and len(common) > pool:
        unjudged = [i for i in common if i not in judged]
        common = sorted(np.random.default_rng(0).choice(unjudged, min(pool, len(unjudged)), replace=False).tolist())
    if len(common) <= k or not set(common) - judged:
        raise SuggestError(f"too few unjudged items with vectors of {', '.join(loaded)}; embed them first")
    matrices = {}
    for name, (ids, matrix) in loaded.items():
        position = {item_id: r for r, item_id in enumerate(ids)}
        matrices[name] = matrix[[position[i] for i in common]]
    fused = weighted_concat([matrices[s] for s in ranking], [1 / len(ranking)] * len(ranking))
    found = pick(fused, [matrices[s] for s in judging], n, [i in judged for i in common], k)
    titles = {item_id: card.title for item_id, card in item_cards(db, [common[r] for r, _ in found]).items()}
    return [Suggestion(common[r], round(score, 4), titles.get(common[r])) for r, score in found]
