"""Search: nearest items to a catalog item, an uploaded photo or a text, with filters and fusion.

Catalogs of up to EXACT_LIMIT items (or filtered subsets of up to SUBSET_EXACT_LIMIT items)
are searched exactly with NumPy; larger ones through the method's Annoy index, widening the
candidate list until k items pass the filters: `neighbour_index` picks the backend
(core/search/neighbours.py) and every search asks it the same way. Both score with the same similarity
(cosine, or minus chi-square for a method whose metric is "chi2" or when `distance="chi2"` is
asked for a histogram method: exactly over every item in the exact path, by re-ranking the best
cosine candidates in the other), so they agree up to ties and Annoy's recall (docs/benchmarks.md).

`method` may be a dict of weights to fuse several methods: the fused score of an item is the
weighted mean of its cosine similarities under each method, over the union of each method's
k x FUSION_DEPTH best candidates (an item without a vector of a method gets 0 from it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import sqlite_utils

from core.catalog import filters as filtering
from core.catalog import vectors
from core.catalog.db import Catalog
from core.catalog.images import ImageError, sha256_bytes
from core.catalog.items import catalog_id, item_cards, item_column
from core.catalog.vectors import missing_vectors
from core.search import caches
from core.search.index import generation, load_index
from core.search.neighbours import AnnoyNeighbours, ExactNeighbours, NeighbourIndex, best_first, unit

EXACT_LIMIT = 20_000  # catalogs up to this many vectors are searched exactly
SUBSET_EXACT_LIMIT = 2_000  # on larger ones, filters passing up to this many items are searched exactly
FUSION_DEPTH = 5  # each fused method contributes k * FUSION_DEPTH candidates
_BLOCK = 256  # queries per neighbours call in search_many
_HISTOGRAM_METRICS = {"chi2", "hellinger"}


class SearchError(ValueError):
    """A search that cannot run, with what to do about it."""


@dataclass
class Hit:
    item_id: str
    rank: int
    score: float
    method: str
    title: str | None = None
    brand: str | None = None
    category: str | None = None
    colour: str | None = None
    gender: str | None = None
    price: float | None = None
    currency: str | None = None
    image_path: str | None = None
    image_url: str | None = None
    photo_missing: bool = False  # image_path was deleted or moved after import

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SearchResult:
    query: dict
    results: list[Hit]
    notes: list[str] = field(default_factory=list)  # what a person should know: stale vectors, empty filters

    def as_dict(self) -> dict:
        return {"query": self.query, "results": [h.as_dict() for h in self.results], "notes": self.notes}


def extractor(method: str, catalog: Catalog):
    """One extractor per (method, version, catalog) per process: models load once (a re-tuned
    method's new head loads as a new version)."""
    from core.methods import create_extractor

    key = (method, _spec(catalog, method).version, str(catalog.path))
    return caches.once(caches.EXTRACTORS, key, lambda: create_extractor(method, catalog))


def _spec(db: sqlite_utils.Database, method: str):
    """The method's spec: a built-in one or one of the catalog's tuned methods."""
    from core.methods import UnknownMethod, get_spec

    try:
        return get_spec(method, db)
    except UnknownMethod:
        raise SearchError(f"unknown method {method!r}; `python -m core methods` lists them") from None


def vector_count(db: sqlite_utils.Database, method: str) -> int:
    """How many vectors a method has, cached per process until they change."""
    return caches.current(
        caches.COUNTS, (str(db.path), method), generation(db, method), lambda: vectors.vector_count(db, method)
    )


def exact_index(db: sqlite_utils.Database, method: str) -> ExactNeighbours:
    """Every vector of a method, unit length, as an exact index; cached per process until they change."""

    def load() -> ExactNeighbours:
        ids, matrix = vectors.load_matrix(db, method)
        if not ids:
            raise SearchError(missing_vectors(method))
        return ExactNeighbours(ids, matrix)

    return caches.current(caches.MATRICES, (str(db.path), method), generation(db, method), load)


def neighbour_index(
    db: sqlite_utils.Database, method: str, allowed: set[str] | None = None, search_k: int | None = None
) -> NeighbourIndex:
    """The backend that answers a method's queries among `allowed` items (None: all).

    Exact up to EXACT_LIMIT vectors, or over just the allowed items when the filters pass at most
    SUBSET_EXACT_LIMIT of a larger catalog; the method's Annoy index otherwise.
    """
    total = vector_count(db, method)
    if total == 0:
        raise SearchError(missing_vectors(method))
    if total <= EXACT_LIMIT:
        return exact_index(db, method)
    if allowed is not None and len(allowed) <= SUBSET_EXACT_LIMIT:
        return ExactNeighbours(*vectors.vectors_of(db, method, allowed))
    return AnnoyNeighbours(load_index(db, method), search_k)


def stored_vectors(db: sqlite_utils.Database, method: str, item_ids: Iterable[str]) -> tuple[list[str], np.ndarray]:
    """Unit vectors of some items (id order; those without one left out): from the cached matrix
    when the method is searched exactly, else from SQL."""
    if vector_count(db, method) <= EXACT_LIMIT:
        index = exact_index(db, method)
        found = sorted(i for i in set(item_ids) if i in index.position)
        return found, index.vectors(found)
    found, matrix = vectors.vectors_of(db, method, item_ids)
    return found, unit(matrix)


def _stored_versions(db: sqlite_utils.Database, method: str) -> set[str]:
    """The versions of a method that made its stored vectors, cached per process until they change."""
    return caches.current(
        caches.VERSIONS, (str(db.path), method), generation(db, method), lambda: vectors.stored_versions(db, method)
    )


def _check_current(db: sqlite_utils.Database, method: str, version: str) -> None:
    """A photo's vector is comparable with the catalog's only when the same version of the method made
    them all (a re-tuned or retrained method's old vectors live in another space)."""
    if _stored_versions(db, method) - {version}:
        raise SearchError(
            f"{method} changed since its catalog vectors were made; run `python -m core embed --method {method}` first"
        )


def stale_note(db: sqlite_utils.Database, method: str) -> str | None:
    """'typecol changed: run embed' when some of a method's stored vectors were made by another
    version of it (re-tuned, retrained): searches use them until it is embedded again."""
    if not _stored_versions(db, method) - {_spec(db, method).version}:
        return None
    return (
        f"{method} changed since its vectors were made: searches use the old ones until it is embedded "
        f"again (`python -m core embed --method {method}`, or Embed + index on the Methods page)"
    )


def query_vector(
    db: sqlite_utils.Database,
    method: str,
    *,
    item_id: str | None = None,
    image: bytes | None = None,
    text: str | None = None,
) -> np.ndarray:
    """The query as a vector of `method`'s space."""
    spec = _spec(db, method)
    if item_id is not None:
        vector = vectors.get_vector(db, method, str(item_id))
        if vector is None:
            if not item_cards(db, [item_id]):
                raise SearchError(f"no catalog item {item_id!r}")
            raise SearchError(f"item {item_id} has no {method} vector (no usable photo, or not embedded yet)")
        return vector
    if image is not None:
        from core.catalog.images import MAX_UPLOAD_BYTES
        from core.engines.embed import embed_image

        if spec.kind != "image":
            raise SearchError(f"{method} searches text; pick an image method for a photo")
        if len(image) > MAX_UPLOAD_BYTES:
            raise SearchError(
                f"photo too large ({len(image) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB)"
            )
        model = extractor(method, db)
        _check_current(db, method, model.spec.version)
        try:
            return embed_image(image, method, db, extractor=model)
        except ImageError as exc:
            raise SearchError(f"cannot read the photo: {exc}") from None
    if text is not None:
        if not text.strip():
            raise SearchError("the text query is empty")
        if spec.kind != "text" and not spec.text_query:
            raise SearchError(f"{method} cannot read text; use minilm (titles) or clip / fashion_clip")
        return extractor(method, db).embed_texts([text.strip()])[0]
    raise SearchError("give an item id, a photo or a text to search with")


def _distance(db: sqlite_utils.Database, method: str, distance: str | None) -> str:
    """The distance a search of `method` ranks by: the method's own unless one is asked for."""
    metric = _spec(db, method).metric
    if distance is None:
        return "chi2" if metric == "chi2" else "cosine"
    if distance not in ("cosine", "chi2"):
        raise SearchError(f"unknown distance {distance!r}; use cosine or chi2")
    if distance == "chi2" and metric not in _HISTOGRAM_METRICS:
        raise SearchError(f"chi-square needs histogram vectors; {method} is compared by {metric}")
    return distance


def _allowed(db: sqlite_utils.Database, filters: dict | None, query_brand: str | None) -> set[str] | None:
    if not filtering.is_active(filters, query_brand):
        return None
    return set(filtering.matching_item_ids(db, filters, query_brand))


def _display(db: sqlite_utils.Database, hits: list[Hit]) -> list[Hit]:
    """Fill the display fields of hits in one query."""
    cards = item_cards(db, [h.item_id for h in hits]) if hits else {}
    for hit in hits:
        card = cards.get(hit.item_id, {})
        for name in ("title", "brand", "category", "colour", "gender", "price", "currency", "image_path", "image_url"):
            setattr(hit, name, card.get(name))
        hit.photo_missing = bool(card.get("photo_missing"))
    return hits


def _query_brand(db: sqlite_utils.Database, item_id: str | None) -> str | None:
    return item_cards(db, [item_id]).get(str(item_id), {}).get("brand") if item_id is not None else None


def search(
    db: sqlite_utils.Database,
    method: str | dict[str, float],
    *,
    item_id: str | None = None,
    image: bytes | None = None,
    text: str | None = None,
    k: int = 10,
    filters: dict | None = None,
    distance: str | None = None,
    search_k: int | None = None,
) -> SearchResult:
    """The k items most like the query (an item id, photo bytes or text), best first.

    `filters` as from `core.catalog.filters.parse_filters`; "exclude_same_brand" applies to item queries.
    """
    if k < 1:
        raise SearchError("k must be at least 1")
    if sum(q is not None for q in (item_id, image, text)) != 1:
        raise SearchError("give exactly one of an item id, a photo or a text to search with")
    if item_id is not None:
        item_id = catalog_id(db, str(item_id))
    weights = method if isinstance(method, dict) else {method: 1.0}
    weights = {m: float(w) for m, w in weights.items() if float(w) > 0}
    if not weights:
        raise SearchError("give at least one method a positive weight")
    query = {
        "item_id": item_id,
        "text": text,
        "image_sha256": sha256_bytes(image) if image is not None else None,
        "method": method,
        "k": k,
        "filters": filters or {},
    }
    brand = _query_brand(db, item_id) if (filters or {}).get("exclude_same_brand") else None
    allowed = _allowed(db, filters, brand)
    exclude = {str(item_id)} if item_id is not None else set()
    if len(weights) == 1:
        name = next(iter(weights))
        vector = query_vector(db, name, item_id=item_id, image=image, text=text)
        ranked = neighbour_index(db, name, allowed, search_k).neighbours(
            vector, k, allowed, exclude, _distance(db, name, distance)
        )[0]
        label = name
    else:
        ranked = _fuse(db, weights, k, allowed, exclude, item_id=item_id, image=image, text=text)
        label = "+".join(f"{w:g}*{m}" for m, w in weights.items())
    notes = [note for m in weights if (note := stale_note(db, m))]
    if allowed is not None and len(ranked) < k:
        notes.append(f"{len(ranked)} of {k} results: " + filtering.explain_empty(db, filters or {}, brand))
    return SearchResult(query, _hits(db, ranked, label, display=True), notes)


def _fuse(db, weights: dict[str, float], k: int, allowed, exclude, **query) -> list[tuple[str, float]]:
    """Weighted mean of each method's cosine similarity over the union of their candidates."""
    total = sum(weights.values())
    queries = {m: unit(query_vector(db, m, **query)) for m in weights}
    candidates: set[str] = set()
    for m, vector in queries.items():
        found = neighbour_index(db, m, allowed).neighbours(vector, k * FUSION_DEPTH, allowed, exclude)[0]
        candidates.update(i for i, _ in found)
    scores = dict.fromkeys(candidates, 0.0)
    for m, vector in queries.items():
        ids, matrix = stored_vectors(db, m, candidates)
        for i, sim in zip(ids, (matrix @ vector).tolist() if ids else []):
            scores[i] += weights[m] / total * sim
    return best_first(scores.items())[:k]


def search_many(
    db: sqlite_utils.Database,
    method: str,
    item_ids: list[str],
    k: int,
    filters: dict | None = None,
    display: bool = False,
) -> Iterator[tuple[str, list[Hit]]]:
    """Neighbours of many catalog items (export, precision, duplicates), each as `search` would rank them.

    Items without a vector are skipped. "exclude_same_brand" applies per query item.
    """
    base = {key: v for key, v in (filters or {}).items() if key != "exclude_same_brand"}
    allowed = _allowed(db, base, None)
    index = neighbour_index(db, method, allowed)
    distance = _distance(db, method, None)
    same_brand = _brand_groups(db) if (filters or {}).get("exclude_same_brand") else None
    for start in range(0, len(item_ids), _BLOCK):
        found, matrix = stored_vectors(db, method, item_ids[start : start + _BLOCK])
        row = {item_id: n for n, item_id in enumerate(found)}
        queries = [i for i in item_ids[start : start + _BLOCK] if i in row]
        if not queries:
            continue
        exclude = [same_brand.get(i, {i}) if same_brand is not None else {i} for i in queries]
        ranked = index.neighbours(matrix[[row[i] for i in queries]], k, allowed, exclude, distance)
        for item_id, best in zip(queries, ranked):
            yield item_id, _hits(db, best, method, display)


def _brand_groups(db: sqlite_utils.Database) -> dict[str, frozenset[str]]:
    """Item id -> the ids of every item of its brand (itself included), for items that have a brand."""
    members: dict[str, set[str]] = {}
    for item_id, brand in item_column(db, "brand").items():
        if brand:
            members.setdefault(brand.casefold(), set()).add(item_id)
    groups = {brand: frozenset(ids) for brand, ids in members.items()}
    return {item_id: group for group in groups.values() for item_id in group}


def _hits(db, ranked: list[tuple[str, float]], method: str, display: bool) -> list[Hit]:
    hits = [Hit(i, r, round(s, 6), method) for r, (i, s) in enumerate(ranked, start=1)]
    return _display(db, hits) if display else hits
