"""What a method is (`MethodSpec`), and the two errors every method lookup may raise.

A spec names its extractor and its weights downloader by import path ("module:attribute"), so
knowing every method, its size and whether it can run here imports no model library.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.catalog.db import Catalog


class WeightsMissing(RuntimeError):
    """A method whose weights are not on this machine; the message is the one-line remedy."""


class UnknownMethod(ValueError):
    """A method name that no spec has; the message names the known ones."""


def resolve_path(path: str):
    """The object at "package.module:attribute", imported now."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _always_available(catalog: Catalog | None) -> str | None:
    return None


@dataclass(frozen=True)
class MethodSpec:
    """What a method is: its name, version, input kind, vector size, distance and loader.

    metric: a metric registered in distances.py: "angular" (cosine, deep features) or "hellinger"
    (square-rooted, L1-normalised histograms: cosine on them is the Hellinger affinity; chi-square
    re-ranking is available on the squared vectors).
    runs_model: whether embedding a photo runs a model that a device (CPU or GPU) runs; False for
    NumPy/OpenCV methods and for methods derived from stored vectors.
    version_of: for a method whose real version depends on this machine or catalog (the autoencoder's
    checkpoint digest), "module:callable(catalog) -> str"; `resolved` applies it.
    preprocessing: for a model method, "module:callable(spec, catalog) -> preprocess": what its decode
    workers run on photos, found without loading the model (a Ray driver needs only that).
    parts: for a derived method, the methods whose stored vectors its own are computed from.
    training: a tuned method's training record (core/curation/tuning.py), for people; None otherwise.
    """

    name: str
    version: str
    kind: str  # "image" or "text"
    dim: int
    metric: str
    family: str
    description: str
    weights: str  # where the weights come from, for people
    factory: str = field(repr=False, compare=False)  # "module:callable(spec, catalog) -> Extractor"
    availability: Callable[[Catalog | None], str | None] = field(
        default=_always_available, repr=False, compare=False
    )  # None, or the one-line remedy
    text_query: bool = False  # can embed text into its image space (CLIP's text tower)
    downloader: str | None = field(default=None, repr=False, compare=False)  # "module:callable(name, catalog) -> Path"
    parts: tuple[str, ...] = ()
    training: dict | None = field(default=None, repr=False, compare=False)
    runs_model: bool = True
    version_of: str | None = field(default=None, repr=False, compare=False)
    preprocessing: str | None = field(default=None, repr=False, compare=False)

    @property
    def derived(self) -> bool:
        return bool(self.parts)

    def resolved(self, catalog: Catalog | None) -> MethodSpec:
        """This spec at its real version for `catalog` (itself when the registered version is the real one)."""
        if self.version_of is None:
            return self
        return dataclasses.replace(self, version=resolve_path(self.version_of)(catalog))

    def download(self, catalog: Catalog | None) -> Path:
        """Fetch the weights (online) into the method's local folder; return that folder."""
        if self.downloader is None:
            raise ValueError(f"{self.name} has no hub weights to download ({self.weights})")
        from core.methods.weights import hub_problem, local_dir

        problem = hub_problem()
        if problem:
            raise WeightsMissing(
                f"{self.name}: cannot download: {problem}. Or copy the model's files into {local_dir(self.name, catalog)}"
            )
        return resolve_path(self.downloader)(self.name, catalog)
