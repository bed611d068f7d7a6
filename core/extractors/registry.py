"""The method registry: every feature extractor registers a spec; the rest of the code asks here."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from core.db import Catalog


class WeightsMissing(RuntimeError):
    """A method whose weights are not on this machine; the message is the one-line remedy."""


class Extractor(Protocol):
    spec: "MethodSpec"

    def embed_images(self, images: list[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class MethodSpec:
    """What a method is: its name, version, input kind, vector size, distance and loader.

    metric: "angular" (cosine, deep features) or "hellinger" (square-rooted, L1-normalised
    histograms: Euclidean/cosine on them is the Hellinger distance; chi-square re-ranking is
    available on the squared vectors).
    """

    name: str
    version: str
    kind: str                      # "image" or "text"
    dim: int
    metric: str
    family: str
    description: str
    weights: str                   # where the weights come from, for people
    factory: Callable[["MethodSpec", Catalog | None], Extractor] = field(repr=False, compare=False)
    availability: Callable[[Catalog | None], str | None] = field(
        default=lambda catalog: None, repr=False, compare=False)
    text_query: bool = False       # can embed text into its image space (CLIP's text tower)


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    _REGISTRY[spec.name] = spec
    return spec


def _load_families() -> None:
    # Importing a family module registers its methods.
    from core.extractors import autoencoder, cnn, colour, efficientnet, hybrid, text, transformers_models  # noqa: F401


def get_spec(name: str) -> MethodSpec:
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown method {name!r}; known methods: {known}") from None


def method_names() -> list[str]:
    _load_families()
    return list(_REGISTRY)


def create_extractor(name: str, catalog: Catalog | None = None) -> Extractor:
    """Build a method's extractor; raise WeightsMissing (one-line remedy) when it cannot load."""
    spec = get_spec(name)
    reason = spec.availability(catalog)
    if reason:
        raise WeightsMissing(reason)
    return spec.factory(spec, catalog)


def list_methods(catalog: Catalog | None = None) -> list[dict]:
    """Every method with whether it can run here and, if not, the exact remedy."""
    _load_families()
    rows = []
    for spec in _REGISTRY.values():
        reason = spec.availability(catalog)
        rows.append({"name": spec.name, "kind": spec.kind, "available": reason is None, "reason": reason,
                     "family": spec.family, "dim": spec.dim, "metric": spec.metric,
                     "version": spec.version, "text_query": spec.text_query,
                     "description": spec.description, "weights": spec.weights})
    return rows
