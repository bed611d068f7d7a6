"""Search: nearest items to a catalog item, an uploaded photo or a text, with filters and fusion.

Catalogs of up to EXACT_LIMIT items (or filtered subsets of up to SUBSET_EXACT_LIMIT items)
are searched exactly with NumPy; larger ones through the method's Annoy index, widening the candidate list until k items pass
the filters. Both score with the same similarity (cosine, or minus chi-square for a method
whose metric is "chi2" or when `distance="chi2"` is asked for a histogram method: exactly over
every item in the exact path, by re-ranking k x CHI2_DEPTH Annoy candidates in the other), so
they agree up to ties and Annoy's recall (see docs/benchmarks.md).

`method` may be a dict of weights to fuse several methods: the fused score of an item is the
weighted mean of its cosine similarities under each method, over the union of each method's
k x FUSION_DEPTH best candidates (an item without a vector of a method gets 0 from it).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sqlite_utils

from core import filters as filtering
from core.db import Catalog
from core.images import ImageError, sha256_bytes
from core.index import generation, load_index
from core.vectors import ROLE_ORDER_SQL, load_matrix, missing_vectors, unpack

EXACT_LIMIT = 20_000       # catalogs up to this many vectors are searched exactly
SUBSET_EXACT_LIMIT = 2_000  # on larger ones, filters passing up to this many items are searched exactly
FUSION_DEPTH = 5         # each fused method contributes k * FUSION_DEPTH candidates
CHI2_DEPTH = 10          # chi-square re-ranks k * CHI2_DEPTH cosine candidates from Annoy
_BLOCK = 256             # queries per matrix product in search_many
_HISTOGRAM_METRICS = {"chi2", "hellinger"}

_lock = threading.Lock()
_matrices: dict[tuple[str, str], tuple[int, list[str], np.ndarray, dict[str, int]]] = {}
_counts: dict[tuple[str, str], tuple[int, int]] = {}
_extractors: dict[tuple[str, str], object] = {}


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

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SearchResult:
    query: dict
    results: list[Hit]

    def as_dict(self) -> dict:
        return {"query": self.query, "results": [h.as_dict() for h in self.results]}


def extractor(method: str, catalog: Catalog):
    """One extractor per (method, catalog) per process: models load once."""
    from core.extractors import create_extractor
    key = (method, str(catalog.path))
    with _lock:
        if key not in _extractors:
            _extractors[key] = create_extractor(method, catalog)
        return _extractors[key]


def _spec(method: str):
    from core.extractors import UnknownMethod, get_spec
    try:
        return get_spec(method)
    except UnknownMethod:
        raise SearchError(f"unknown method {method!r}; `python -m core methods` lists them") from None


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-12)


def vector_count(db: sqlite_utils.Database, method: str) -> int:
    """How many vectors a method has, cached per process until they change."""
    key, gen = (str(db.path), method), generation(db, method)
    cached = _counts.get(key)
    if cached and cached[0] == gen:
        return cached[1]
    count = db.execute("SELECT count(*) FROM embeddings WHERE method = ?", (method,)).fetchone()[0]
    _counts[key] = (gen, count)
    return count


def vectors_for(db: sqlite_utils.Database, method: str) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """A method's unit-length vectors in id order, cached per process until they change."""
    key = (str(db.path), method)
    gen = generation(db, method)
    cached = _matrices.get(key)
    if cached and cached[0] == gen:
        return cached[1], cached[2], cached[3]
    ids, matrix = load_matrix(db, method)
    if not ids:
        raise SearchError(missing_vectors(method))
    matrix = _unit(matrix)
    position = {item_id: n for n, item_id in enumerate(ids)}
    _matrices[key] = (gen, ids, matrix, position)
    return ids, matrix, position


def _vectors_of(db: sqlite_utils.Database, method: str, item_ids: list[str]) -> tuple[list[str], np.ndarray]:
    """Unit vectors of some items (id order), from the cached matrix when small, else from SQL."""
    if vector_count(db, method) <= EXACT_LIMIT:
        ids, matrix, position = vectors_for(db, method)
        found = sorted(i for i in set(item_ids) if i in position)
        return found, matrix[[position[i] for i in found]] if found else np.zeros((0, matrix.shape[1]), np.float32)
    rows: dict[str, np.ndarray] = {}
    wanted = sorted(set(item_ids))
    for start in range(0, len(wanted), 900):
        chunk = wanted[start:start + 900]
        rows.update((i, unpack(blob)) for i, blob in db.execute(
            f"SELECT item_id, vector FROM embeddings WHERE method = ? AND item_id IN ({','.join('?' * len(chunk))})",
            [method, *chunk]))
    found = sorted(rows)
    return found, _unit(np.vstack([rows[i] for i in found])) if found else np.zeros((0, 0), np.float32)


def query_vector(db: sqlite_utils.Database, method: str, *, item_id: str | None = None,
                 image: bytes | None = None, text: str | None = None) -> np.ndarray:
    """The query as a vector of `method`'s space."""
    spec = _spec(method)
    if item_id is not None:
        row = db.execute("SELECT vector FROM embeddings WHERE method = ? AND item_id = ?", (method, str(item_id))).fetchone()
        if row is None:
            if db.execute("SELECT 1 FROM items WHERE id = ?", (str(item_id),)).fetchone() is None:
                raise SearchError(f"no catalog item {item_id!r}")
            raise SearchError(f"item {item_id} has no {method} vector (no usable photo, or not embedded yet)")
        return unpack(row[0]).copy()
    if image is not None:
        from core.embed import embed_image
        from core.images import MAX_UPLOAD_BYTES
        if spec.kind != "image":
            raise SearchError(f"{method} searches text; pick an image method for a photo")
        if len(image) > MAX_UPLOAD_BYTES:
            raise SearchError(f"photo too large ({len(image) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB)")
        try:
            return embed_image(image, method, db, extractor=extractor(method, db))
        except ImageError as exc:
            raise SearchError(f"cannot read the photo: {exc}") from None
    if text is not None:
        if not text.strip():
            raise SearchError("the text query is empty")
        if spec.kind != "text" and not spec.text_query:
            raise SearchError(f"{method} cannot read text; use minilm (titles) or clip / fashion_clip")
        return extractor(method, db).embed_texts([text.strip()])[0]
    raise SearchError("give an item id, a photo or a text to search with")


def _distance(method: str, distance: str | None) -> str:
    """The distance a search of `method` ranks by: the method's own unless one is asked for."""
    metric = _spec(method).metric
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


def _best(ids: list[str], scores: np.ndarray, depth: int) -> list[tuple[str, float]]:
    """The `depth` highest finite scores, best first, ties by item id."""
    finite = np.flatnonzero(np.isfinite(scores))
    depth = min(depth, len(finite))
    if depth <= 0:
        return []
    top = finite[np.argpartition(-scores[finite], depth - 1)[:depth]]
    return sorted(((ids[i], float(scores[i])) for i in top), key=lambda p: (-p[1], p[0]))


def _chi2_scores(vector: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    from core.extractors.colour import chi2_distances
    return -chi2_distances(vector, candidates)


def rank_vector(db: sqlite_utils.Database, method: str, vector: np.ndarray, k: int,
                allowed: set[str] | None = None, exclude: set[str] = frozenset(),
                distance: str | None = None, search_k: int | None = None) -> list[tuple[str, float]]:
    """(item id, similarity) of the k best items for a query vector, best first."""
    distance = _distance(method, distance)
    vector = _unit(np.asarray(vector, dtype=np.float32))
    total = vector_count(db, method)
    if total == 0:
        raise SearchError(missing_vectors(method))
    if total <= EXACT_LIMIT or (allowed is not None and len(allowed) <= SUBSET_EXACT_LIMIT):
        return _exact(db, method, vector, k, allowed, exclude, distance, total)
    found = _annoy(db, method, vector, k * CHI2_DEPTH if distance == "chi2" else k, allowed, exclude, search_k,
                   1.0 if allowed is None else len(allowed) / total)
    if distance == "chi2" and found:
        index = load_index(db, method)
        candidates = _unit(np.vstack([index.vector(index.position[i]) for i, _ in found]))
        scores = _chi2_scores(vector, candidates)
        found = sorted(((i, float(s)) for (i, _), s in zip(found, scores)), key=lambda p: (-p[1], p[0]))
    return found[:k]


def _exact(db, method, vector, k, allowed, exclude, distance, total) -> list[tuple[str, float]]:
    if total <= EXACT_LIMIT:
        ids, matrix, _ = vectors_for(db, method)
        keep = None
        if allowed is not None or exclude:
            keep = np.fromiter(((allowed is None or i in allowed) and i not in exclude for i in ids), bool, len(ids))
            if keep.all():
                keep = None
        if keep is not None:
            ids = [i for i, kept in zip(ids, keep) if kept]
            matrix = matrix[keep]
    else:  # a large catalog filtered down to a small subset: read just those vectors
        ids, matrix = _vectors_of(db, method, list(allowed - set(exclude)))
    if not ids:
        return []
    scores = _chi2_scores(vector, matrix) if distance == "chi2" else matrix @ vector
    return _best(ids, scores, k)


def _annoy(db, method, vector, depth, allowed, exclude, search_k, fraction) -> list[tuple[str, float]]:
    """Annoy candidates passing the filters, widening the search until `depth` pass (or all are seen).

    With filters passing a `fraction` of the catalog, the first try asks for depth / fraction x 2
    neighbours; the node budget stays that of an unfiltered search of `depth` items, or one node
    per neighbour asked for per tree when that is more.
    """
    index = load_index(db, method)
    n = depth + len(exclude) if fraction >= 1 else int(depth / max(fraction, 1e-9) * 2) + len(exclude)
    budget = search_k or index.search_k(depth)
    while True:
        n = min(n, len(index.ids))
        positions, sims = index.nearest(vector, n, max(budget, n * index.info.trees))
        found = [(index.ids[p], s) for p, s in zip(positions, sims)
                 if index.ids[p] not in exclude and (allowed is None or index.ids[p] in allowed)]
        if len(found) >= depth or n >= len(index.ids):
            return sorted(found, key=lambda p: (-p[1], p[0]))[:depth]
        n *= 4


def _display(db: sqlite_utils.Database, hits: list[Hit]) -> list[Hit]:
    """Fill the display fields of hits in one query."""
    if not hits:
        return hits
    marks = ",".join("?" * len(hits))
    order = ROLE_ORDER_SQL
    rows = {r["id"]: r for r in db.query(
        f"SELECT i.id, i.title, i.brand, i.category, i.colour, i.gender, i.price, i.currency, "
        f"(SELECT path FROM images g WHERE g.item_id = i.id AND g.status = 'ok' ORDER BY {order} LIMIT 1) AS image_path, "
        f"(SELECT url FROM images g WHERE g.item_id = i.id AND g.url IS NOT NULL ORDER BY {order} LIMIT 1) AS image_url "
        f"FROM items i WHERE i.id IN ({marks})", [h.item_id for h in hits])}
    for hit in hits:
        row = rows.get(hit.item_id, {})
        for name in ("title", "brand", "category", "colour", "gender", "price", "currency", "image_path", "image_url"):
            setattr(hit, name, row.get(name))
    return hits


def _query_brand(db: sqlite_utils.Database, item_id: str | None) -> str | None:
    if item_id is None:
        return None
    row = db.execute("SELECT brand FROM items WHERE id = ?", (str(item_id),)).fetchone()
    return row[0] if row else None


def search(db: sqlite_utils.Database, method: str | dict[str, float], *, item_id: str | None = None,
           image: bytes | None = None, text: str | None = None, k: int = 10, filters: dict | None = None,
           distance: str | None = None, search_k: int | None = None) -> SearchResult:
    """The k items most like the query (an item id, photo bytes or text), best first.

    `filters` as from `core.filters.parse_filters`; "exclude_same_brand" applies to item queries.
    """
    if k < 1:
        raise SearchError("k must be at least 1")
    if sum(q is not None for q in (item_id, image, text)) != 1:
        raise SearchError("give exactly one of an item id, a photo or a text to search with")
    weights = method if isinstance(method, dict) else {method: 1.0}
    weights = {m: float(w) for m, w in weights.items() if float(w) > 0}
    if not weights:
        raise SearchError("give at least one method a positive weight")
    query = {"item_id": item_id, "text": text, "image_sha256": sha256_bytes(image) if image is not None else None,
             "method": method, "k": k, "filters": filters or {}}
    allowed = _allowed(db, filters, _query_brand(db, item_id))
    exclude = {str(item_id)} if item_id is not None else set()
    if len(weights) == 1:
        name = next(iter(weights))
        vector = query_vector(db, name, item_id=item_id, image=image, text=text)
        ranked = rank_vector(db, name, vector, k, allowed, exclude, distance, search_k)
        label = name
    else:
        ranked = _fuse(db, weights, k, allowed, exclude, item_id=item_id, image=image, text=text)
        label = "+".join(f"{w:g}*{m}" for m, w in weights.items())
    hits = [Hit(item, rank, round(score, 6), label) for rank, (item, score) in enumerate(ranked, start=1)]
    return SearchResult(query, _display(db, hits))


def _fuse(db, weights: dict[str, float], k: int, allowed, exclude, **query) -> list[tuple[str, float]]:
    """Weighted mean of each method's cosine similarity over the union of their candidates."""
    total = sum(weights.values())
    queries = {m: _unit(np.asarray(query_vector(db, m, **query), np.float32)) for m in weights}
    candidates: set[str] = set()
    for m, vector in queries.items():
        candidates.update(i for i, _ in rank_vector(db, m, vector, k * FUSION_DEPTH, allowed, exclude, "cosine"))
    scores = dict.fromkeys(candidates, 0.0)
    for m, vector in queries.items():
        ids, matrix = _vectors_of(db, m, list(candidates))
        for i, sim in zip(ids, (matrix @ vector).tolist() if ids else []):
            scores[i] += weights[m] / total * sim
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def search_many(db: sqlite_utils.Database, method: str, item_ids: list[str], k: int,
                filters: dict | None = None, display: bool = False) -> Iterator[tuple[str, list[Hit]]]:
    """Neighbours of many catalog items (export, precision, duplicates), each as `search` would rank them.

    Exact blocks of matrix products up to EXACT_LIMIT vectors; the Annoy index beyond. Items
    without a vector are skipped. "exclude_same_brand" applies per query item.
    """
    total = vector_count(db, method)
    if total == 0:
        raise SearchError(missing_vectors(method))
    base = {key: v for key, v in (filters or {}).items() if key != "exclude_same_brand"}
    allowed = _allowed(db, base, None)
    brand_of = (dict(db.execute("SELECT id, lower(coalesce(brand, '')) FROM items"))
                if (filters or {}).get("exclude_same_brand") else None)
    if total > EXACT_LIMIT or _distance(method, None) == "chi2":
        for item_id in item_ids:
            vector = db.execute("SELECT vector FROM embeddings WHERE method = ? AND item_id = ?",
                                (method, item_id)).fetchone()
            if vector is None:
                continue
            here = allowed
            if brand_of is not None and brand_of.get(item_id):
                brand = brand_of[item_id]
                here = {i for i in (allowed if allowed is not None else brand_of) if brand_of.get(i) != brand}
            ranked = rank_vector(db, method, unpack(vector[0]), k, here, {item_id})
            yield item_id, _hits(db, ranked, method, display)
        return
    ids, matrix, position = vectors_for(db, method)
    keep = np.ones(len(ids), bool) if allowed is None else np.fromiter((i in allowed for i in ids), bool, len(ids))
    brands = np.array([brand_of.get(i, "") for i in ids], dtype=object) if brand_of is not None else None
    queries = [i for i in item_ids if i in position]
    for start in range(0, len(queries), _BLOCK):
        chunk = queries[start:start + _BLOCK]
        rows = np.array([position[i] for i in chunk])
        sims = matrix[rows] @ matrix.T
        sims[:, ~keep] = -np.inf
        sims[np.arange(len(rows)), rows] = -np.inf
        if brands is not None:
            same = (brands[rows][:, None] == brands[None, :]) & (brands[rows] != "")[:, None]
            sims[same] = -np.inf
        depth = min(k, len(ids))
        top = np.argpartition(-sims, depth - 1, axis=1)[:, :depth]
        best = np.take_along_axis(sims, top, axis=1)
        for n, item_id in enumerate(chunk):
            ranked = sorted(((ids[j], float(v)) for j, v in zip(top[n].tolist(), best[n].tolist()) if v != -np.inf),
                            key=lambda p: (-p[1], p[0]))
            yield item_id, _hits(db, ranked, method, display)


def _hits(db, ranked: list[tuple[str, float]], method: str, display: bool) -> list[Hit]:
    hits = [Hit(i, r, round(s, 6), method) for r, (i, s) in enumerate(ranked, start=1)]
    return _display(db, hits) if display else hits
