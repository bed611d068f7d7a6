"""Scorers over one ranked list of graded verdicts (pure functions), and their intervals.

A list is the grades of a method's top k in rank order, None where a result was not judged.
Unjudged results are unknown: never counted as wrong, reported apart (`judged` against k).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.curation.grades import GOOD, Scoring

Z95 = 1.959963984540054
RESAMPLES = 1000  # bootstrap resamples of the queries behind a mean


def wilson_interval(successes: float, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when there are no trials."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(max(0.0, p * (1 - p)) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain: gain at position i (from 1) divided by log2(i + 1)."""
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


@dataclass(frozen=True)
class ListScore:
    """What one ranked list scores: hits (a close one counting its share) over judged results,
    nDCG over the judged results (None when the query has no good or close result known), and
    the reciprocal rank of the first good result (None when nothing in the list was judged)."""

    judged: int
    hits: float
    ndcg: float | None
    reciprocal_rank: float | None


def score_list(grades: Sequence[str | None], known: Sequence[str], k: int, scoring: Scoring) -> ListScore:
    """Score a top k (`grades` in rank order, None = not judged) against every verdict `known` for
    its query (whichever method showed the pair): nDCG@k is the DCG of the judged results in their
    order (unjudged ones left out, not counted as wrong) over the DCG of the query's best k known
    verdicts."""
    top = list(grades)[:k]
    judged = [g for g in top if g is not None]
    ideal = dcg(sorted((scoring.gain(g) for g in known), reverse=True)[:k])
    ndcg = dcg([scoring.gain(g) for g in judged]) / ideal if ideal > 0 and judged else None
    first_good = next((rank for rank, g in enumerate(top, start=1) if g == GOOD), None)
    reciprocal = (1 / first_good if first_good else 0.0) if judged else None
    return ListScore(len(judged), sum(scoring.hit(g) for g in judged), ndcg, reciprocal)


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% interval and how many lists (queries) it stands on."""

    value: float | None
    low: float | None
    high: float | None
    n: int

    def as_dict(self) -> dict:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high, "queries": self.n}


def mean_with_interval(values: Sequence[float | None], seed: int = 0) -> Estimate:
    """The mean of per-query values (None: none for that query) with a percentile bootstrap 95% interval (seeded, so the same
    labels always give the same interval)."""
    data = np.asarray([v for v in values if v is not None], dtype=float)
    if data.size == 0:
        return Estimate(None, None, None, 0)
    means = np.random.default_rng(seed).choice(data, size=(RESAMPLES, data.size)).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(float(data.mean()), float(low), float(high), int(data.size))


def precision_estimate(scores: Sequence[ListScore]) -> Estimate:
    """P@k over every judged result of the lists (hits / judged), with a Wilson interval."""
    judged = sum(s.judged for s in scores)
    hits = sum(s.hits for s in scores)
    if not judged:
        return Estimate(None, 0.0, 1.0, 0)
    low, high = wilson_interval(hits, judged)
    return Estimate(hits / judged, low, high, sum(1 for s in scores if s.judged))
