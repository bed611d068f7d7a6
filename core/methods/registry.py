"""The method registry: every method's spec (declared in specs.py); the rest of the code asks here.

A spec names its extractor and its weights downloader by import path ("module:attribute"), so
knowing every method, its size and whether it can run here imports no model library.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.catalog.db import Catalog
from core.catalog.vectors import methods_with_vectors, stored_versions

if TYPE_CHECKING:
    from core.methods.base import Extractor


class WeightsMissing(RuntimeError):
    """A method whose weights are not on this machine; the message is the one-line remedy."""


class UnknownMethod(ValueError):
    """A method name that no spec has; the message names the known ones."""


def _resolve(path: str):
    """The object at "package.module:attribute", imported now."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _always_available(catalog: Catalog | None) -> str | None:
    return None


@dataclass(frozen=True)
class MethodSpec:
    """What a method is: its name, version, input kind, vector size, distance and loader.

    metric: "angular" (cosine, deep features) or "hellinger" (square-rooted, L1-normalised
    histograms: Euclidean/cosine on them is the Hellinger distance; chi-square re-ranking is
    available on the squared vectors).
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

    @property
    def derived(self) -> bool:
        return bool(self.parts)

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
        return _resolve(self.downloader)(self.name, catalog)


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    _REGISTRY[spec.name] = spec
    return spec


def _load_specs() -> None:
    from core.methods import specs  # noqa: F401 - importing it registers every method


def _tuned_specs(catalog: Catalog | None, name: str | None = None) -> list[MethodSpec]:
    """The catalog's tuned methods (core/methods/tuned.py), or just `name`; none without a catalog."""
    if catalog is None:
        return []
    from core.methods.tuned import tuned_specs

    return tuned_specs(catalog, name)


def get_spec(name: str, catalog: Catalog | None = None) -> MethodSpec:
    """A built-in method's spec, else (given a catalog) one of the catalog's tuned methods."""
    _load_specs()
    if name in _REGISTRY:
        return _REGISTRY[name]
    tuned = _tuned_specs(catalog, name)
    if tuned:
        return tuned[0]
    known = ", ".join(sorted(_REGISTRY) + [s.name for s in _tuned_specs(catalog)])
    raise UnknownMethod(f"unknown method {name!r}; known methods: {known}")


def create_extractor(name: str, catalog: Catalog | None = None) -> Extractor:
    """Build a method's extractor; raise WeightsMissing (one-line remedy) when it cannot load."""
    spec = get_spec(name, catalog)
    reason = spec.availability(catalog)
    if reason:
        raise WeightsMissing(reason)
    return _resolve(spec.factory)(spec, catalog)


def _state(spec: MethodSpec, catalog: Catalog | None, reason: str | None, count: int) -> tuple[str, str | None]:
    """A method's state for people, with what to do next: "ready" (searchable now), "changed" (its
    vectors were made by an older version: still searchable), "not embedded" or "missing" (weights)."""
    embed = f"run `python -m core embed --method {spec.name}` (or Embed + index on the Methods page)"
    if reason:
        return "missing", reason
    if not count:
        return "not embedded", f"no vectors yet: {embed}"
    if stored_versions(catalog, spec.name) - {spec.version}:
        return "changed", f"{spec.name} changed since its vectors were made: {embed}"
    return "ready", None


def list_methods(catalog: Catalog | None = None) -> list[dict]:
    """Every method (the catalog's tuned ones last) with whether it can run here and, if not, the
    exact remedy; `state` says whether it is usable now (core.methods.registry._state) and
    `vectors` how many it has in the catalog. A tuned method's row also has its `bases` and
    `training` record."""
    _load_specs()
    rows = []
    counts = methods_with_vectors(catalog) if catalog is not None else {}
    for spec in [*_REGISTRY.values(), *_tuned_specs(catalog)]:
        reason = spec.availability(catalog)
        state, todo = _state(spec, catalog, reason, counts.get(spec.name, 0))
        row = {
            "name": spec.name,
            "kind": spec.kind,
            "available": reason is None,
            "reason": reason,
            "state": state,
            "todo": todo,
            "vectors": counts.get(spec.name, 0),
            "family": spec.family,
            "dim": spec.dim,
            "metric": spec.metric,
            "version": spec.version,
            "text_query": spec.text_query,
            "description": spec.description,
            "weights": spec.weights,
        }
        if spec.training is not None:
            row |= {"bases": spec.training.get("bases", list(spec.parts)), "training": spec.training}
        rows.append(row)
    return rows


def method_states(catalog: Catalog | None = None) -> list[dict]:
    """Every method as scripts see it (`methods --json`, the API's /methods): name, kind, whether it
    can run here and why not, the device it would run on, and a tuned method's bases and training."""
    from core.methods import devices

    try:
        device = devices.resolve()
    except ValueError:  # LOOKALIKE_DEVICE unusable here: torch methods get no device, the rest are listed
        device = None
    return [
        {
            **{k: m[k] for k in ("name", "kind", "available", "reason", "state", "todo", "vectors")},
            "device": devices.method_device(m["family"], device),
            **{k: m[k] for k in ("bases", "training") if k in m},
        }
        for m in list_methods(catalog)
    ]
