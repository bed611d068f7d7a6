"""Hybrid: a weighted fusion of a deep method and the colour histogram, as one vector.

Parts are L2-normalised and scaled by the square root of their weights before concatenation,
so the cosine similarity of two hybrid vectors is the weighted sum of the parts' cosines, and
one Annoy index serves it. Weights come from `LOOKALIKE_HYBRID`, e.g.
`efficientnet_lite0=0.8,color_hist=0.2` (the default); they are part of the method's version.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core.db import Catalog
from core.extractors.registry import MethodSpec, create_extractor, get_spec, register
from core.extractors.torch_utils import l2_normalise
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
    return np.hstack([np.sqrt(weights[name]) * l2_normalise(np.atleast_2d(parts[name]))
                      for name in weights]).astype(np.float32)


class Hybrid:
    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        self.spec = spec
        self.weights = WEIGHTS
        self.parts = {name: create_extractor(name, catalog) for name in self.weights}

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return combine({name: ex.embed_images(images) for name, ex in self.parts.items()}, self.weights)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError("hybrid embeds images, not text")


def _available(catalog: Catalog | None) -> str | None:
    for name in WEIGHTS:
        reason = get_spec(name).availability(catalog)
        if reason:
            return f"hybrid needs {name}: {reason}"
    return None


def _spec() -> MethodSpec:
    from core.extractors import colour, efficientnet  # noqa: F401 - parts must be registered first
    dims = sum(get_spec(name).dim for name in WEIGHTS)
    version = "1|" + ",".join(f"{n}={w:.3f}:{get_spec(n).version}" for n, w in WEIGHTS.items())
    return MethodSpec(
        name="hybrid", version=version, kind="image", dim=dims, metric="angular", family="hybrid",
        description="Weighted fusion: " + " + ".join(f"{w:.2f} {n}" for n, w in WEIGHTS.items()),
        weights="its parts'", factory=Hybrid, availability=_available,
    )


register(_spec())
