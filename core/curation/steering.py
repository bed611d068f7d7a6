"""Re-ranking an item's candidates: toward the look-alikes the team accepted, away from those it
rejected (Rocchio), and for variety (maximal marginal relevance).

Both work on unit vectors of the method's own space (a fusion such as `hybrid`, or a learnt
method, included): cosine similarities, so one item's list is re-ranked in a few small matrix products.
The constants were chosen on one half of the 4,000 labelled photos and checked on the other
(benchmarks/curation_bench.py, docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Steering:
    """How far a list moves: score = cos(query, c) + toward x mean cos(accepted, c) - away x mean cos(rejected, c)."""

    toward: float = 2.0
    away: float = 2.0


STEERING = Steering()


def steered_scores(
    query: np.ndarray | None,
    candidates: np.ndarray,
    liked: np.ndarray,
    disliked: np.ndarray,
    steering: Steering = STEERING,
) -> np.ndarray:
    """Each candidate row's steered score (all rows unit length; `query` None: no query vector,
    as for a list steered from its likes alone)."""
    scores = candidates @ query if query is not None else np.zeros(len(candidates), np.float32)
    if len(liked):
        scores = scores + steering.toward * (candidates @ liked.T).mean(axis=1)
    if len(disliked):
        scores = scores - steering.away * (candidates @ disliked.T).mean(axis=1)
    return scores


def diverse_order(
    scores: np.ndarray, candidates: np.ndarray, chosen: np.ndarray, diversity: float, limit: int | None = None
) -> list[int]:
    """Candidate rows in maximal-marginal-relevance order: each next one maximises
    (1 - diversity) x its score - diversity x its cosine to the closest row already chosen
    (`chosen`: rows that are in the list before these, such as pins and accepted items). After
    `limit` picks the rest follow in their given order."""
    n = len(candidates)
    closest = (candidates @ chosen.T).max(axis=1) if len(chosen) else np.full(n, -np.inf, np.float32)
    left, order = np.ones(n, bool), []
    for _ in range(min(n, limit or n)):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        value = np.where(left, (1 - diversity) * scores - diversity * penalty, -np.inf)
        best = int(np.argmax(value))
        order.append(best)
        left[best] = False
        closest = np.maximum(closest, candidates @ candidates[best])
    return order + [n for n in range(len(candidates)) if left[n]]
