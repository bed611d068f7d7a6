"""A method's space in a catalog: one object per (catalog, method), resolved once, that every flow carries.

`open_space(catalog, name)` looks the method up once (a built-in spec, or one of the catalog's tuned
methods) and returns a `MethodSpace` that owns:

- the spec at its real version (`spec`, resolved on first use: the autoencoder's checkpoint digest,
  a tuned head's version), its metric (core/methods/distances.py) and whether it runs a model;
- its extractor (`extractor()`), loaded lazily and cached per process by that real version (and the
  device), so a retrained or re-tuned method loads its new model while the process lives; the same
  one embeds the catalog (core/engines/embed.py) and reads a query photo or text;
- a derived method's parts' spaces (`part()`): embedding it embeds them there, and a photo runs their
  shared extractors (no second copy of a part's model);
- its vectors: count, matrix, versions, each item's vector, and the change counter (`generation()`)
  that makes every cached read stale the moment a vector changes (core/search/caches.py);
- its neighbour backend (`neighbour_index()`), chosen by registered name (core/search/backends.py);
- its Annoy index (`build_index()`, `loaded_index()`, `compact()`), searched with what changed since
  it was built (`annoy_neighbours()`, core/search/delta.py).

Its vectors are those of live items (gone items, which left the shop's feed, are never searched nor
returned) and of one version: the version served until a new one is completely embedded
(core/catalog/vectors.py: `promote`); `stale_note()` says when a new one is being embedded.

Embedding, search, search_many, export, evaluation, near-duplicates and precision take a space, not a name.
A space is cheap: open one per request; what is costly (models, matrices, indices) is cached
behind it, keyed so that nothing stale is ever served.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from functools import cached_property

import numpy as np

from core.catalog import activity, vectors
from core.catalog.db import Catalog
from core.catalog.items import item_cards
from core.methods import UnknownMethod, build_extractor, devices, get_spec, tuned
from core.methods.base import Extractor, ImageExtractor
from core.methods.distances import Metric, metric, unit
from core.methods.spec import MethodSpec
from core.search import backends, caches
from core.search.delta import Delta, compact, compact_in_background, load_delta
from core.search.index import IndexInfo, IndexUnavailable, LoadedIndex, build_index, compacting, load_index
from core.search.neighbours import AnnoyNeighbours, ExactNeighbours, MergedNeighbours, NeighbourIndex
from core.settings import settings
from core.team.access import Action, require


class SearchError(ValueError):
    """A search that cannot run, with what to do about it."""


class ItemGone(SearchError):
    """A query item that left the catalog (missing from the last synced feed)."""


class MethodSpace:
    """One method in one catalog; see the module docstring."""

    def __init__(self, catalog: Catalog, registered: MethodSpec, backend: str | None = None):
        self.catalog = catalog
        self.registered = registered  # as looked up: the registry's version may not be the real one
        self.backend = backends.backend(backend).name if backend else None  # None: the first that serves
        self._parts: dict[str, MethodSpace] = {}

    def __repr__(self) -> str:
        return f"MethodSpace({self.name!r}, {self.catalog.path})"

    @property
    def name(self) -> str:
        return self.registered.name

    @property
    def kind(self) -> str:
        return self.registered.kind

    @property
    def runs_model(self) -> bool:
        return self.registered.runs_model

    @cached_property
    def spec(self) -> MethodSpec:
        """The spec at its real version for this catalog (read once: the autoencoder hashes its checkpoint)."""
        return self.registered.resolved(self.catalog)

    @property
    def version(self) -> str:
        return self.spec.version

    @cached_property
    def metric(self) -> Metric:
        return metric(self.registered.metric)

    def distance(self, asked: str | None = None) -> str:
        """The distance a search ranks by: the metric's own unless `asked` (SearchError if it does not apply)."""
        try:
            return self.metric.distance(asked, self.name)
        except ValueError as exc:
            raise SearchError(str(exc)) from None

    def device(self) -> str:
        """Where its model runs (the CPU for methods that run none)."""
        return devices.resolve() if self.runs_model else "cpu"

    # --- the model ---------------------------------------------------------------------------------

    def _model_key(self, version: str) -> tuple[str, str, str, str]:
        return (str(self.catalog.path), self.name, version, self.device())

    def extractor(self) -> Extractor:
        """Its extractor, loaded once per process per real version and device (what embeds the catalog and
        reads a query photo or text); the `LOOKALIKE_MODEL_CACHE` most recently used stay loaded
        (core/search/caches.py). A derived method's photos run its parts' own shared extractors.
        A method fitted on its first load (words) takes the fit's version from then on."""
        key = self._model_key(self.version)
        model = caches.once(caches.EXTRACTORS, key, lambda: self._build(self.spec), keep=settings().model_cache)
        if model.spec.version != self.version:  # fitted (or retrained) while it loaded: kept under its real version
            caches.forget(caches.EXTRACTORS, key)
            self.spec = model.spec
            model = caches.once(
                caches.EXTRACTORS, self._model_key(model.spec.version), lambda: model, keep=settings().model_cache
            )
        return model

    def _build(self, spec: MethodSpec) -> Extractor:
        return build_extractor(spec, self.catalog, load_part=self._part_extractor)

    def _part_extractor(self, name: str) -> ImageExtractor:
        model = self.part(name).extractor()
        if not isinstance(model, ImageExtractor):
            raise SearchError(f"{self.name}: its part {name} is not an image method")
        return model

    def part(self, name: str) -> MethodSpace:
        """The space of one of a derived method's parts (hybrid's, a tuned head's image bases), opened once
        per space: embedding the method embeds its parts there, and a photo runs their shared models."""
        if name not in self._parts:
            self._parts[name] = MethodSpace(self.catalog, get_spec(name, self.catalog))
        return self._parts[name]

    def served_extractor(self) -> Extractor:
        """The extractor of the version its searches serve, for a query photo: its own, or, while a
        re-tuned method's new version is not yet embedded, its previous saved head (one rule for every
        face: the complete served version answers). SearchError when that version cannot be loaded."""
        served = self.searched_version()
        if served == self.version:
            return self.extractor()
        earlier = tuned.spec_at(self.catalog, self.name, served) if self.registered.family == "tuned" else None
        if earlier is None:
            raise SearchError(
                f"{self.name} changed since its catalog vectors were made and the version that made them cannot "
                f"read a photo any more; run `python -m core embed --method {self.name}` first"
            )
        return caches.once(caches.EXTRACTORS, self._model_key(served), lambda: self._build(earlier))

    # --- its vectors -------------------------------------------------------------------------------

    def generation(self) -> int:
        """The change counter of its vectors: moves on every insert, update and delete."""
        return vectors.generation(self.catalog, self.name)

    def _cached(self, cache: dict, load):
        return caches.current(cache, (str(self.catalog.path), self.name), self.generation(), load)

    def searched_version(self) -> str:
        """The one version of its vectors that searches and its index read: its real version once
        embedded with it, else (re-tuned, retrained, not embedded since) the old one. Two versions'
        vectors are never read together."""
        current = self.version
        return caches.current(
            caches.SEARCHED,
            (str(self.catalog.path), self.name, current),
            self.generation(),
            lambda: vectors.searched_version(self.catalog, self.name, current),
        )

    def vector_count(self) -> int:
        """How many vectors of the searched version it has, cached per process until they change."""
        return self._cached(
            caches.COUNTS, lambda: vectors.vector_count(self.catalog, self.name, self.searched_version())
        )

    def stored_versions(self) -> set[str]:
        """The versions that made its stored vectors, cached per process until they change."""
        return self._cached(caches.VERSIONS, lambda: vectors.stored_versions(self.catalog, self.name))

    def exact_index(self) -> ExactNeighbours:
        """Every vector, unit length, as an exact index; cached per process until they change."""

        def load() -> ExactNeighbours:
            ids, matrix = vectors.load_matrix(self.catalog, self.name, self.searched_version())
            if not ids:
                raise SearchError(vectors.missing_vectors(self.name))
            return ExactNeighbours(ids, matrix)

        return self._cached(caches.MATRICES, load)

    def vectors_of(self, item_ids: Iterable[str]) -> tuple[list[str], np.ndarray]:
        """The stored (raw) vectors of some items, read now: (ids in id order, matrix)."""
        return vectors.vectors_of(self.catalog, self.name, item_ids, self.searched_version())

    def stored_vectors(self, item_ids: Iterable[str]) -> tuple[list[str], np.ndarray]:
        """Unit vectors of some items (id order; those without one left out): from the cached matrix
        when it is searched exactly, else from SQL."""
        if self.vector_count() <= backends.EXACT_LIMIT:
            index = self.exact_index()
            found = sorted(i for i in set(item_ids) if i in index.position)
            return found, index.vectors(found)
        found, matrix = self.vectors_of(item_ids)
        return found, unit(matrix)

    def item_vector(self, item_id: str) -> np.ndarray:
        """A catalog item's stored vector (SearchError saying why it has none)."""
        vector = vectors.get_vector(self.catalog, self.name, str(item_id), self.searched_version())
        if vector is None:
            if not item_cards(self.catalog, [item_id]):
                raise SearchError(f"no catalog item {item_id!r}")
            if str(item_id) in gone_items(self.catalog):
                raise ItemGone(f"item {item_id} has left the catalog (missing from the last synced feed)")
            raise SearchError(f"item {item_id} has no {self.name} vector (no usable photo, or not embedded yet)")
        return vector

    def check_current(self, version: str) -> None:
        """A new vector is comparable with the catalog's only when the same version made them all
        (a re-tuned or retrained method's old vectors live in another space)."""
        if self.searched_version() != version:
            raise SearchError(
                f"{self.name} changed since its catalog vectors were made; "
                f"run `python -m core embed --method {self.name}` first"
            )

    def next_version(self) -> vectors.NextVersion | None:
        """A new version of it being embedded beside the one served (None when none is); read each time,
        as storing it moves no generation (the vectors served do not change)."""
        return vectors.next_version(self.catalog, self.name, self.kind)

    def stale_note(self) -> str | None:
        """What a face says when the vectors searched are not the method's current version: a new
        version being embedded (n/N; searches use the complete old one until it is done), or a
        method changed and not embedded again since."""
        how = f"(`python -m core embed --method {self.name}`, or Embed + index on the Methods page)"
        upcoming = self.next_version()
        if upcoming is not None:
            return f"{self.name}: {upcoming.note()}; searches use the complete previous version until it is done {how}"
        if self.searched_version() != self.version:
            return f"{self.name} changed since its vectors were made: searches use the old ones until it is embedded again {how}"
        if self.stored_versions() - {self.searched_version()}:
            return (
                f"{self.name} changed since some of its vectors were made: only the items embedded since are "
                f"searched until it is embedded again {how}"
            )
        return None

    # --- neighbours and the index ------------------------------------------------------------------

    def neighbour_index(self, allowed: Set[str] | None = None, search_k: int | None = None) -> NeighbourIndex:
        """The backend that answers its queries among `allowed` items (None: all)."""
        total = self.vector_count()
        if total == 0:
            raise SearchError(vectors.missing_vectors(self.name))
        chosen = backends.backend(self.backend) if self.backend else backends.choose(total, allowed)
        return chosen.make(self, allowed, search_k)

    def build_index(self, trees: int | None = None, progress: bool = True) -> IndexInfo:
        """Build (or rebuild) its Annoy index from its stored vectors (admins only)."""
        require(Action.INDEX)
        info = build_index(self.catalog, self.name, self.registered.metric, trees, progress, self.searched_version())
        activity.record(self.catalog, Action.INDEX, f"{self.name}: {info.items:,} items")
        return info

    def compact(self, trees: int | None = None, progress: bool = True) -> IndexInfo:
        """Rebuild its Annoy index now, this process serving the old build and its delta meanwhile (admins only)."""
        require(Action.INDEX)
        return compact(self.catalog, self.name, self.registered.metric, self.searched_version(), trees, progress)

    def delta(self, loaded: LoadedIndex) -> Delta:
        """What changed since `loaded` was built, cached per process until its vectors change; then
        brought up to date from the cached one (of the same build and version) by what changed since."""
        key, version = (str(self.catalog.path), self.name), self.searched_version()
        stamp = (self.generation(), loaded.info.checksum, loaded.info.built_at, version)
        cached = caches.DELTAS.get(key)
        since = (cached[0][0], cached[1]) if cached and cached[0][1:] == stamp[1:] and cached[0][0] < stamp[0] else None
        return caches.current(
            caches.DELTAS, key, stamp, lambda: load_delta(self.catalog, self.name, version, loaded, since)
        )

    def annoy_neighbours(self, search_k: int | None = None) -> NeighbourIndex:
        """Its Annoy index merged with what changed since it was built; compacted in the background
        once the delta passes LOOKALIKE_COMPACT_SHARE of its vectors (where this process may write it).
        A reader that may not rebuild an unusable index searches exactly meanwhile."""
        writable = not getattr(self.catalog, "read_only", False)
        try:
            loaded = self.loaded_index()
        except IndexUnavailable:
            if writable:
                raise
            return self.exact_index()
        delta = self.delta(loaded)
        if not delta.changed:
            return AnnoyNeighbours(loaded, search_k)
        share = len(delta.changed) / max(self.vector_count(), 1)
        if writable and share > settings().compact_share and not compacting(self.catalog, self.name):
            compact_in_background(
                self.catalog, self.name, self.registered.metric, self.searched_version(), loaded.info.trees
            )
        return MergedNeighbours(AnnoyNeighbours(loaded, search_k, delta.changed), delta.exact)

    def loaded_index(self, rebuild: bool = True, progress: bool = False) -> LoadedIndex:
        """Its Annoy index, memory-mapped and cached per process; rebuilt first if stale (unless not `rebuild`)."""
        return load_index(self.catalog, self.name, self.registered.metric, rebuild, progress, self.searched_version())


def gone_items(catalog: Catalog) -> frozenset[str]:
    """The ids of the items that left the feed, read again only once one has gone or come back since
    (every search leaves them out: one counter read per request instead of every gone id)."""
    key = (str(catalog.path),)
    return caches.current(
        caches.GONE, key, vectors.gone_generation(catalog), lambda: frozenset(vectors.gone_ids(catalog))
    )


def open_space(catalog: Catalog, name: str, backend: str | None = None) -> MethodSpace:
    """The space of method `name` in `catalog` (SearchError naming the known methods if there is none).
    `backend`: a registered neighbour backend's name, to use it whatever the catalog's size."""
    try:
        return MethodSpace(catalog, get_spec(name, catalog), backend)
    except UnknownMethod:
        raise SearchError(f"unknown method {name!r}; `python -m core methods` lists them") from None
