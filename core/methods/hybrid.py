"""Hybrid: a weighted fusion of a deep method and the colour histogram, as one vector.

Parts are L2-normalised and scaled by the square root of their weights before concatenation,
so the cosine similarity of two hybrid vectors is the weighted sum of the parts' cosines, and
one Annoy index serves it. Weights come from `LOOKALIKE_HYBRID`, e.g.
`efficientnet_lite0=0.8,color_hist=0.2` (the default); they are part of the method's version.
A derived method: a catalog's hybrid vectors are combined from its parts' stored vectors.
"""

from __future__ import annotations

import math

import numpy as np

from core.catalog.db import Catalog
from core.methods.base import DerivedExtractor
from core.methods.distances import normalised_weights, weighted_concat
from core.methods.spec import MethodSpec
from core.settings import DEFAULT_HYBRID, settings


def parse_weights(text: str) -> dict[str, float]:
    """'a=0.8,b=0.2' -> {'a': 0.8, 'b': 0.2}, normalised to sum to 1; ValueError naming the bad part."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = (piece.strip() for piece in part.partition("="))
        if not sep or not name:
            raise ValueError(f"{part.strip()!r} is not METHOD=WEIGHT (e.g. efficientnet_lite0=0.8,color_hist=0.2)")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"the weight of {name}, {value!r}, is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"the weight of {name} must be a finite number of at least 0, not {value!r}")
        if name in weights:
            raise ValueError(f"{name} is given two weights")
        weights[name] = weight
    if sum(weights.values()) <= 0:
        raise ValueError(f"at least one weight must be above 0 in {text!r}")
    return normalised_weights(weights)


def configured() -> tuple[dict[str, float], str | None]:
    """The weights `LOOKALIKE_HYBRID` sets, with None; or the default weights with the one-line reason
    the variable cannot be used (the hybrid method is then unavailable; nothing else is affected)."""
    text = settings().hybrid
    try:
        return parse_weights(text), None
    except ValueError as exc:
        return parse_weights(DEFAULT_HYBRID), f"LOOKALIKE_HYBRID={text!r} cannot be used: {exc}"


def combine(parts: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Concatenate L2-normalised part vectors (rows aligned) scaled by sqrt(weight)."""
    return weighted_concat([parts[name] for name in weights], list(weights.values()))


class Hybrid(DerivedExtractor):
    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        super().__init__(spec, catalog)
        self.weights = configured()[0]

    def combine(self, part_vectors: dict[str, np.ndarray]) -> np.ndarray:
        return combine(part_vectors, self.weights)
