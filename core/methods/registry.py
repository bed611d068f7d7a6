"""The method registry: every method's spec (specs.py registers the built-in ones, tuned.py a
catalog's tuned heads); the rest of the code asks here: `get_spec`, `create_extractor`, `list_methods`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from core.catalog.db import Catalog
from core.catalog.vectors import methods_with_vectors, next_version, stored_versions
from core.methods.base import DerivedExtractor, ImageExtractor, PartLoader, photo_reader
from core.methods.spec import MethodSpec, UnknownMethod, WeightsMissing, resolve_path

if TYPE_CHECKING:
    from core.methods.base import Extractor

__all__ = [
    "MethodInfo",
    "MethodSpec",
    "MethodState",
    "UnknownMethod",
    "WeightsMissing",
    "build_extractor",
    "create_extractor",
    "get_spec",
    "preprocessing",
]


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    _REGISTRY[spec.name] = spec
    return spec


CatalogSpecs = Callable[[Catalog, "str | None"], list[MethodSpec]]
_CATALOG_SPECS: list[CatalogSpecs] = []  # methods a catalog holds (tuned.py registers its heads)


def register_catalog_specs(source: CatalogSpecs) -> CatalogSpecs:
    """Register where a catalog's own methods come from: `source(catalog, name or None)` gives the
    specs of the catalog's methods (or of just `name`) at their current versions."""
    _CATALOG_SPECS.append(source)
    return source


def _catalog_specs(catalog: Catalog | None, name: str | None = None) -> list[MethodSpec]:
    """The catalog's own methods (its tuned heads), or just `name`; none without a catalog."""
    if catalog is None:
        return []
    return [spec for source in _CATALOG_SPECS for spec in source(catalog, name)]


def get_spec(name: str, catalog: Catalog | None = None) -> MethodSpec:
    """A built-in method's spec, else (given a catalog) one of the catalog's tuned methods."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    tuned = _catalog_specs(catalog, name)
    if tuned:
        return tuned[0]
    known = ", ".join(sorted(_REGISTRY) + [s.name for s in _catalog_specs(catalog)])
    raise UnknownMethod(f"unknown method {name!r}; known methods: {known}")


def create_extractor(name: str, catalog: Catalog | None = None) -> Extractor:
    """Build a method's extractor, on its own (a method space's `extractor()` shares one per process);
    raise WeightsMissing (one-line remedy) when it cannot load."""
    return build_extractor(get_spec(name, catalog), catalog)


def build_extractor(spec: MethodSpec, catalog: Catalog | None = None, load_part: PartLoader | None = None) -> Extractor:
    """Build the extractor of a spec already looked up; WeightsMissing (one-line remedy) when it cannot load.
    A derived method gets its parts' extractors (for photos) from `load_part`: a method space passes its
    parts' shared ones; by default each part is built once, for this extractor only."""
    reason = spec.availability(catalog)
    if reason:
        raise WeightsMissing(reason)
    extractor = resolve_path(spec.factory)(spec, catalog)
    if isinstance(extractor, DerivedExtractor):
        extractor.load_part = load_part or _built_once(catalog)
    return extractor


def preprocessing(spec: MethodSpec, catalog: Catalog | None = None) -> Callable:
    """What a method's decode workers run on photos (its extractor's `preprocess`), without loading
    its model when the spec says how (`spec.preprocessing`); WeightsMissing when it cannot run here."""
    reason = spec.availability(catalog)
    if reason:
        raise WeightsMissing(reason)
    if spec.preprocessing is None:
        return photo_reader(build_extractor(spec, catalog)).preprocess
    return resolve_path(spec.preprocessing)(spec, catalog)


def _built_once(catalog: Catalog | None) -> PartLoader:
    """A part loader that builds each part the first time it is asked for, then gives the same one."""
    built: dict[str, ImageExtractor] = {}

    def load(name: str) -> ImageExtractor:
        if name not in built:
            part = create_extractor(name, catalog)
            if not isinstance(part, ImageExtractor):
                raise TypeError(f"{name} is not an image method: it cannot be a part of a photo's vector")
            built[name] = part
        return built[name]

    return load


def _state(spec: MethodSpec, catalog: Catalog | None, reason: str | None, count: int) -> tuple[str, str | None]:
    """A method's state for people, with what to do next: "ready" (searchable now), "changed" (its
    vectors were made by an older version: still searchable), "not embedded" or "missing" (weights)."""
    embed = f"run `python -m core embed --method {spec.name}` (or Embed + index on the Methods page)"
    if reason:
        return "missing", reason
    if not count or catalog is None:  # no catalog: nothing embedded
        return "not embedded", f"no vectors yet: {embed}"
    upcoming = next_version(catalog, spec.name, spec.kind)
    if upcoming is not None:
        return "changed", f"{upcoming.note()}; the complete previous version answers until it is done: {embed}"
    if stored_versions(catalog, spec.name) - {spec.resolved(catalog).version}:
        return "changed", f"{spec.name} changed since its vectors were made: {embed}"
    return "ready", None


@dataclass(frozen=True)
class MethodInfo:
    """One method as people see it (`methods`, the app's method lists): whether it can run here
    and, if not, the exact remedy (`reason`); `state` says whether it is usable now (`_state`),
    `todo` the next step, `vectors` how many it has in the catalog. A tuned method also has its
    `bases` and `training` record."""

    name: str
    kind: str
    available: bool
    reason: str | None
    state: str  # ready, changed, not embedded, missing
    todo: str | None
    vectors: int
    family: str
    dim: int
    metric: str
    version: str
    text_query: bool
    runs_model: bool
    description: str
    weights: str
    bases: list[str] | None = None
    training: dict | None = None


@dataclass(frozen=True)
class MethodState:
    """One method as scripts see it (`methods --json`, the API's /methods): whether it can run here
    and why not, the device, runtime (backend) and precision it would run with; `todo` is the next
    step when `reason` does not already say it (a missing method's reason is its remedy)."""

    name: str
    kind: str
    available: bool
    reason: str | None
    state: str
    vectors: int
    todo: str | None
    device: str | None
    backend: str | None
    precision: str | None
    bases: list[str] | None = None  # a tuned method's
    training: dict | None = None

    def as_dict(self) -> dict:
        """The JSON of `methods --json`: `bases` and `training` only for a tuned method."""
        row = asdict(self)
        return row if self.training is not None else {k: v for k, v in row.items() if k not in ("bases", "training")}


def list_methods(catalog: Catalog | None = None) -> list[MethodInfo]:
    """Every method (the catalog's tuned ones last) with whether it can run here and what to do next."""
    rows = []
    counts = methods_with_vectors(catalog) if catalog is not None else {}
    for spec in [*_REGISTRY.values(), *_catalog_specs(catalog)]:
        reason = spec.availability(catalog)
        state, todo = _state(spec, catalog, reason, counts.get(spec.name, 0))
        rows.append(
            MethodInfo(
                name=spec.name,
                kind=spec.kind,
                available=reason is None,
                reason=reason,
                state=state,
                todo=todo,
                vectors=counts.get(spec.name, 0),
                family=spec.family,
                dim=spec.dim,
                metric=spec.metric,
                version=spec.version,
                text_query=spec.text_query,
                runs_model=spec.runs_model,
                description=spec.description,
                weights=spec.weights,
                bases=spec.training.get("bases", list(spec.parts)) if spec.training is not None else None,
                training=spec.training,
            )
        )
    return rows


def method_states(catalog: Catalog | None = None) -> list[MethodState]:
    """Every method as scripts see it (`methods --json`, the API's /methods); a bad LOOKALIKE_BACKEND
    shows as backend None."""
    from core.methods import backends, devices

    try:
        device = devices.resolve()
    except ValueError:  # LOOKALIKE_DEVICE unusable here: torch methods get no device, the rest are listed
        device = None
    usable = backends.summary()["backend"] is not None
    rows = []
    for m in list_methods(catalog):
        where = device if m.runs_model else "cpu"
        backend = backends.for_method(m.name, m.runs_model, m.kind, where) if usable and where else None
        rows.append(
            MethodState(
                name=m.name,
                kind=m.kind,
                available=m.available,
                reason=m.reason,
                state=m.state,
                vectors=m.vectors,
                todo=None if m.todo == m.reason else m.todo,
                device=where,
                backend=backend,
                precision=backends.method_precision(m.name, backend, where),
                bases=m.bases,
                training=m.training,
            )
        )
    return rows
