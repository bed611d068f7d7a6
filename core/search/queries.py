"""Search: nearest items to a catalog item, an uploaded photo or a text, with filters and fusion.

Every search runs in a method's space (core/search/space.py), which picks the neighbour backend
(core/search/backends.py: exact NumPy on small catalogs and small filtered subsets, the method's Annoy
index otherwise, widening the candidate list until k items pass the filters); every search asks it
the same way. Both score with the same similarity (cosine, or another distance of the method's metric
when asked for, e.g. `distance="chi2"` for colour histograms: exactly over every item in the exact
path, by re-ranking the best cosine candidates in the other), so they agree up to ties and Annoy's
recall (docs/benchmarks.md).

A search may fuse several spaces (a dict of space -> weight): the fused score of an item is the
weighted mean of its cosine similarities in each space, over the union of each one's
k x FUSION_DEPTH best candidates (an item without a vector in a space gets 0 from it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import numpy as np

from core.catalog import filters as filtering
from core.catalog.db import Catalog
from core.catalog.images import MAX_UPLOAD_BYTES, ImageError, Photo, load_rgb, sha256_bytes
from core.catalog.items import ItemCard, catalog_id, item_cards, item_column
from core.methods.base import photo_reader, text_reader
from core.methods.distances import normalised_weights, unit
from core.search.neighbours import best_first
from core.search.space import MethodSpace, SearchError

FUSION_DEPTH = 5  # each fused method contributes k * FUSION_DEPTH candidates
_BLOCK = 256  # queries per neighbours call in search_many

__all__ = [
    "FUSION_DEPTH",
    "Hit",
    "MethodSpace",
    "SearchError",
    "SearchResult",
    "allowed_items",
    "brand_groups",
    "display_hits",
    "photo_vector",
    "query_vector",
    "search",
    "search_many",
]


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


def query_vector(
    space: MethodSpace, *, item_id: str | None = None, image: bytes | Photo | None = None, text: str | None = None
) -> np.ndarray:
    """The query as a vector of the space."""
    if item_id is not None:
        return space.item_vector(item_id)
    if image is not None:
        return photo_vector(space, image)
    if text is not None:
        if not text.strip():
            raise SearchError("the text query is empty")
        if space.kind != "text" and not space.registered.text_query:
            raise SearchError(f"{space.name} cannot read text; use minilm or words (titles) or clip / fashion_clip")
        return text_reader(space.extractor()).embed_texts([text.strip()])[0]
    raise SearchError("give an item id, a photo or a text to search with")


def _photo_sha256(image: bytes | Photo | None) -> str | None:
    return image.sha256 if isinstance(image, Photo) else sha256_bytes(image) if image is not None else None


def photo_vector(space: MethodSpace, image: bytes | Photo) -> np.ndarray:
    """A photo's vector in the space (the one way every face and test embeds a photo that is not in the
    catalog): preprocessed as the catalog's were, by the version that made them, with the space's shared
    model (a Photo is searched as decoded, bytes are decoded here). SearchError saying why it cannot be."""
    if space.kind != "image":
        raise SearchError(f"{space.name} searches text; pick an image method for a photo")
    size = len(image.data if isinstance(image, Photo) else image)
    if size > MAX_UPLOAD_BYTES:
        raise SearchError(f"photo too large ({size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB)")
    model = photo_reader(space.served_extractor())
    space.check_current(model.spec.version)
    try:
        return model.embed_images([image.image if isinstance(image, Photo) else load_rgb(image)])[0]
    except ImageError as exc:
        raise SearchError(f"cannot read the photo: {exc}") from None


def allowed_items(db: Catalog, filters: dict | None, query_brand: str | None) -> set[str] | None:
    """The items that pass the filters (None: every item)."""
    if not filtering.is_active(filters, query_brand):
        return None
    return set(filtering.matching_item_ids(db, filters, query_brand))


HitT = TypeVar("HitT", bound=Hit)  # a Hit, or a curated one


def display_hits(db: Catalog, hits: list[HitT]) -> list[HitT]:
    """Fill the display fields of hits in one query."""
    cards = item_cards(db, [h.item_id for h in hits]) if hits else {}
    for hit in hits:
        card = cards.get(hit.item_id) or ItemCard(hit.item_id)
        hit.title, hit.brand, hit.category, hit.colour = card.title, card.brand, card.category, card.colour
        hit.gender, hit.price, hit.currency = card.gender, card.price, card.currency
        hit.image_path, hit.image_url, hit.photo_missing = card.image_path, card.image_url, card.photo_missing
    return hits


def query_brand(db: Catalog, item_id: str | None) -> str | None:
    card = item_cards(db, [item_id]).get(str(item_id)) if item_id is not None else None
    return card.brand if card else None


Spaces = MethodSpace | dict[MethodSpace, float]


def search_query(spaces: Spaces, item_id, image, text, k: int, filters: dict | None) -> dict:
    """The query as a search reports it (the photo by its SHA-256; a fusion's methods with their weights)."""
    return {
        "item_id": item_id,
        "text": text,
        "image_sha256": _photo_sha256(image),
        "method": {sp.name: w for sp, w in spaces.items()} if isinstance(spaces, dict) else spaces.name,
        "k": k,
        "filters": filters or {},
    }


def search(
    spaces: Spaces,
    *,
    item_id: str | None = None,
    image: bytes | Photo | None = None,
    text: str | None = None,
    k: int = 10,
    filters: dict | None = None,
    distance: str | None = None,
    search_k: int | None = None,
) -> SearchResult:
    """The k items most like the query (an item id, photo bytes or an already decoded Photo, or text) in a method's space, or in
    several fused (a dict of space -> weight), best first.

    `filters` as from `core.catalog.filters.parse_filters`; "exclude_same_brand" applies to item queries.
    """
    if k < 1:
        raise SearchError("k must be at least 1")
    if sum(q is not None for q in (item_id, image, text)) != 1:
        raise SearchError("give exactly one of an item id, a photo or a text to search with")
    weights = _weights(spaces)
    db = next(iter(weights)).catalog
    if item_id is not None:
        item_id = catalog_id(db, str(item_id))
    query = search_query(spaces, item_id, image, text, k, filters)
    brand = query_brand(db, item_id) if (filters or {}).get("exclude_same_brand") else None
    allowed = allowed_items(db, filters, brand)
    exclude = {str(item_id)} if item_id is not None else set()
    if len(weights) == 1:
        space = next(iter(weights))
        vector = query_vector(space, item_id=item_id, image=image, text=text)
        chosen = space.distance(distance)
        ranked = space.neighbour_index(allowed, search_k).neighbours(vector, k, allowed, exclude, chosen)[0]
        label = space.name
    else:
        ranked = _fuse(weights, k, allowed, exclude, item_id=item_id, image=image, text=text)
        label = "+".join(f"{w:g}*{sp.name}" for sp, w in weights.items())
    notes = [note for space in weights if (note := space.stale_note())]
    if allowed is not None and len(ranked) < k:
        notes.append(f"{len(ranked)} of {k} results: " + filtering.explain_empty(db, filters or {}, brand))
    return SearchResult(query, _hits(db, ranked, label, display=True), notes)


def _weights(spaces: Spaces) -> dict[MethodSpace, float]:
    """Each space's share of a fused score (those above 0); SearchError for weights that cannot be used."""
    given = spaces if isinstance(spaces, dict) else {spaces: 1.0}
    try:
        shares = normalised_weights({space.name: w for space, w in given.items()})
    except ValueError as exc:
        raise SearchError(str(exc)) from None
    return {space: shares[space.name] for space in given if shares[space.name] > 0}


def _fuse(weights: dict[MethodSpace, float], k: int, allowed, exclude, **query) -> list[tuple[str, float]]:
    """Weighted mean of each space's cosine similarity over the union of their candidates."""
    total = sum(weights.values())
    queries = {space: unit(query_vector(space, **query)) for space in weights}
    candidates: set[str] = set()
    for space, vector in queries.items():
        found = space.neighbour_index(allowed).neighbours(vector, k * FUSION_DEPTH, allowed, exclude)[0]
        candidates.update(i for i, _ in found)
    scores = dict.fromkeys(candidates, 0.0)
    for space, vector in queries.items():
        ids, matrix = space.stored_vectors(candidates)
        for i, sim in zip(ids, (matrix @ vector).tolist() if ids else []):
            scores[i] += weights[space] / total * sim
    return best_first(scores.items())[:k]


def search_many(
    space: MethodSpace,
    item_ids: list[str],
    k: int,
    filters: dict | None = None,
    display: bool = False,
) -> Iterator[tuple[str, list[Hit]]]:
    """Neighbours of many catalog items (export, precision, duplicates), each as `search` would rank them.

    Items without a vector are skipped. "exclude_same_brand" applies per query item.
    """
    db = space.catalog
    base = {key: v for key, v in (filters or {}).items() if key != "exclude_same_brand"}
    allowed = allowed_items(db, base, None)
    index = space.neighbour_index(allowed)
    distance = space.distance()
    same_brand = brand_groups(db) if (filters or {}).get("exclude_same_brand") else None
    for start in range(0, len(item_ids), _BLOCK):
        found, matrix = space.stored_vectors(item_ids[start : start + _BLOCK])
        row = {item_id: n for n, item_id in enumerate(found)}
        queries = [i for i in item_ids[start : start + _BLOCK] if i in row]
        if not queries:
            continue
        exclude = [same_brand.get(i, {i}) if same_brand is not None else {i} for i in queries]
        ranked = index.neighbours(matrix[[row[i] for i in queries]], k, allowed, exclude, distance)
        for item_id, best in zip(queries, ranked):
            yield item_id, _hits(db, best, space.name, display)


def brand_groups(db: Catalog) -> dict[str, frozenset[str]]:
    """Item id -> the ids of every item of its brand (itself included), for items that have a brand."""
    members: dict[str, set[str]] = {}
    for item_id, brand in item_column(db, "brand").items():
        if brand:
            members.setdefault(brand.casefold(), set()).add(item_id)
    groups = {brand: frozenset(ids) for brand, ids in members.items()}
    return {item_id: group for group in groups.values() for item_id in group}


def _hits(db, ranked: list[tuple[str, float]], method: str, display: bool) -> list[Hit]:
    hits = [Hit(i, r, round(s, 6), method) for r, (i, s) in enumerate(ranked, start=1)]
    return display_hits(db, hits) if display else hits
