"""Hybrid: a weighted fusion of a deep method and the colour histogram, as one vector.

Parts are L2-normalised and scaled by the square root of their weights before concatenation,
so the cosine similarity of two hybrid vectors is the weighted sum of the parts' cosines, and
one Annoy index serves it. Weights come from `LOOKALIKE_HYBRID`, e.g.
`efficientnet_lite0=0.8,color_hist=0.2` (the default); they are part of the method's version.
A derived method: a catalog's hybrid vectors are combined from its parts' stored vectors.
"""

from __future__ import annotations

import numpy as np

from core.catalog.db import Catalog
from core.methods.base import DerivedExtractor
from core.methods.distances import weighted_concat
from core.methods.spec import MethodSpec
from core.settings import settings


def parse_weights(text: str) -> dict[str, float]:
    """'a=0.8,b=0.2' -> {'a': 0.8, 'b': 0.2}, normalised to sum to 1."""
    weights = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        weights[name.strip()] = float(value)
    total = sum(weights.values())
    if total <= 0 or any(w < 0 for w in weights.values()):
        raise ValueError(f"hybrid weights must be non-negative and not all zero: {text!r}")
    return {name: w / total for name, w in weights.items()}


WEIGHTS = parse_weights(settings().hybrid)


def combine(parts: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Concatenate L2-normalised part vectors (rows aligned) scaled by sqrt(weight)."""
    return weighted_concat([parts[name] for name in weights], list(weights.values()))


class Hybrid(DerivedExtractor):
    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        super().__init__(spec, catalog)
        self.weights = WEIGHTS

    def combine(self, part_vectors: dict[str, np.ndarray]) -> np.ndarray:
        return combine(part_vectors, self.weights)
