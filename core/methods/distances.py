"""How a method's vectors are compared: its metric, the distances a search may rank by under it,
and the Annoy metric that finds candidates. NumPy only, so every layer above may use it.

Every stored vector has unit length, so cosine similarity (a dot product) ranks every method.
A "hellinger" method stores square-rooted, L1-normalised histograms (color_hist): cosine on them is
the Hellinger affinity, and squaring them gives the histograms back for chi-square re-ranking.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

K = TypeVar("K")
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (query, candidate rows) -> score per row, higher closer


def chi2_distances(query: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Chi-square distance between Hellinger-form vectors (squared back to histograms)."""
    q = np.square(query.astype(np.float64))
    c = np.square(candidates.astype(np.float64))
    return 0.5 * np.sum(np.square(c - q) / (c + q + 1e-10), axis=1)


def chi2_scores(query: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Minus the chi-square distance of each candidate row to the query (higher is closer)."""
    return -chi2_distances(query, candidates)


# distance name -> how it re-scores candidates; "cosine" is the dot product every backend computes itself
RESCORERS: dict[str, Scorer] = {"chi2": chi2_scores}
DISTANCES = ("cosine", *RESCORERS)
SAID = {"chi2": "chi-square"}  # how messages name a distance


@dataclass(frozen=True)
class Metric:
    """A method's metric: the distances a search may rank by (the first is the default) and the
    Annoy metric whose neighbours are its candidates."""

    name: str
    distances: tuple[str, ...] = ("cosine",)
    annoy: str = "angular"

    def distance(self, asked: str | None, method: str) -> str:
        """The distance a search ranks by: the metric's default, or `asked` when the metric allows it."""
        if asked is None:
            return self.distances[0]
        if asked not in DISTANCES:
            raise ValueError(f"unknown distance {asked!r}; use {' or '.join(DISTANCES)}")
        if asked not in self.distances:
            raise ValueError(f"{SAID.get(asked, asked)} needs histogram vectors; {method} is compared by {self.name}")
        return asked


METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    METRICS[metric.name] = metric
    return metric


register_metric(Metric("angular"))
register_metric(Metric("hellinger", distances=("cosine", "chi2")))


def metric(name: str) -> Metric:
    """A registered metric by name (a method's spec names one)."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None


def unit(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32 (zero rows stay zero)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    return (matrix / np.maximum(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-12)).astype(np.float32, copy=False)


def normalised_weights(weights: Mapping[K, float]) -> dict[K, float]:
    """The weights scaled to sum to 1; ValueError (one line) unless each is a finite number of at least 0,
    one is above 0, their sum is finite and every weight above 0 stays a normal positive number once scaled.
    Every weighting goes through here (LOOKALIKE_HYBRID, fusion, tune's base weights, stored heads)."""
    for name, weight in weights.items():
        if not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"the weight of {name} must be a finite number of at least 0, not {weight!r}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("at least one weight must be above 0: give a method a positive weight")
    if not math.isfinite(total):
        raise ValueError("the weights are too large: their sum overflows (give weights such as 0.8 and 0.2)")
    scaled = {name: weight / total for name, weight in weights.items()}
    for name, weight in weights.items():
        if weight > 0 and not scaled[name] >= sys.float_info.min:
            raise ValueError(
                f"the weight of {name} is too small beside the others to count (give weights such as 0.8 and 0.2)"
            )
    return scaled


def weighted_concat(parts: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Each part's rows unit-length, scaled by √weight, side by side: the cosine of two such rows is
    the weighted sum of the parts' cosines (hybrid, and a tuned head's input)."""
    return np.hstack([np.sqrt(w) * unit(np.atleast_2d(p)) for p, w in zip(parts, weights)]).astype(np.float32)
