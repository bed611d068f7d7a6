"""Search: nearest items to a catalog item, an uploaded photo or a text, with filters and fusion.

Catalogs (or filtered subsets) of up to EXACT_LIMIT items are searched exactly with NumPy;
larger ones through the method's Annoy index, widening the candidate list until k items pass
the filters. Both give the same results up to ties (Annoy with its default search_k is near
exact at these sizes; see docs/benchmarks.md). `method` may be a dict of weights to fuse
several methods: each method's cosine similarities are combined on the union of candidates.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sqlite_utils

from core import filters as filtering
from core.embed import db_file
from core.images import sha256_bytes
from core.index import generation, load_index
from core.vectors import load_matrix, unpack

EXACT_LIMIT = 20_000
FUSION_DEPTH = 5         # each fused method contributes k * FUSION_DEPTH candidates
CHI2_DEPTH = 10          # chi-square re-ranks k * CHI2_DEPTH cosine candidates

_lock = threading.Lock()
_matrices: dict[tuple[str, str], tuple[int, list[str], np.ndarray, dict[str, int]]] = {}
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


def extractor(method: str, db_path: Path | None):
    """One extractor per (method, catalog) per process: models load once."""
    from core.extractors import create_extractor
    key = (method, str(db_path))
    with _lock:
        if key not in _extractors:
            _extractors[key] = create_extractor(method, db_path)
        return _extractors[key]


def vectors_for(db: sqlite_utils.Database, method: str) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """A method's unit-length vectors, cached per process until they change."""
    key = (str(db_file(db)), method)
    gen = generation(db, method)
    cached = _matrices.get(key)
    if cached and cached[0] == gen:
        return cached[1], cached[2], cached[3]
    ids, matrix = load_matrix(db, method)
    if not ids:
        raise SearchError(f"no vectors for {method} yet; run `python -m core embed --method {method}`")
    matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    position = {item_id: n for n, item_id in enumerate(ids)}
    _matrices[key] = (gen, ids, matrix, position)
    return ids, matrix, position


def query_vector(db: sqlite_utils.Database, method: str, *, item_id: str | None = None,
                 image: bytes | None = None, text: str | None = None) -> np.ndarray:
    """The query as a vector of `method`'s space."""
    from core.extractors import get_spec
    spec = get_spec(method)
    if item_id is not None:
        row = db.execute("SELECT vector FROM embeddings WHERE method = ? AND item_id = ?", (method, str(item_id))).fetchone()
        if row is None:
            if db.execute("SELECT 1 FROM items WHERE id = ?", (str(item_id),)).fetchone() is None:
                raise SearchError(f"no catalog item {item_id!r}")
            raise SearchError(f"item {item_id} has no {method} vector (no usable photo, or not embedded yet)")
        return unpack(row[0]).copy()
    if image is not None:
        if spec.kind != "image":
            raise SearchError(f"{method} searches text; pick an image method for a photo")
        return extractor(method, db_file(db)).embed_images([_decode(image)])[0]
    if text is not None:
        if not text.strip():
            raise SearchError("the text query is empty")
        if spec.kind != "text" and not spec.text_query:
            raise SearchError(f"{method} cannot read text; use minilm (titles) or clip / fashion_clip")
        return extractor(method, db_file(db)).embed_texts([text.strip()])[0]
    raise SearchError("give an item id, a photo or a text to search with")


def _decode(data: bytes):
    from core.images import MAX_UPLOAD_BYTES, load_rgb
    if len(data) > MAX_UPLOAD_BYTES:
        raise SearchError(f"photo too large ({len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB)")
    return load_rgb(data)


def _allowed(db: sqlite_utils.Database, filters: dict | None, query_brand: str | None) -> set[str] | None:
    if not filtering.is_active(filters, query_brand):
        return None
    return set(filtering.matching_item_ids(db, filters, query_brand))


def rank_vector(db: sqlite_utils.Database, method: str, vector: np.ndarray, k: int,
                allowed: set[str] | None = None, exclude: set[str] = frozenset(),
                distance: str | None = None, search_k: int = -1) -> list[tuple[str, float]]:
    """(item id, similarity) of the k best items for a query vector, best first."""
    depth = k * CHI2_DEPTH if distance == "chi2" else k
    vector = np.asarray(vector, dtype=np.float32)
    vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
    total = db.execute("SELECT count(*) FROM embeddings WHERE method = ?", (method,)).fetchone()[0]
    if total <= EXACT_LIMIT or (allowed is not None and len(allowed) <= EXACT_LIMIT):
        found = _exact(db, method, vector, depth, allowed, exclude, total)
    else:
        found = _annoy(db, method, vector, depth, allowed, exclude, search_k)
    if distance == "chi2":
        found = _chi2(db, method, vector, found)
    return found[:k]


def _exact(db, method, vector, depth, allowed, exclude, total) -> list[tuple[str, float]]:
    if total <= EXACT_LIMIT:
        ids, matrix, _ = vectors_for(db, method)
        keep = None
        if allowed is not None or exclude:
            keep = np.fromiter(((allowed is None or i in allowed) and i not in exclude for i in ids), bool, len(ids))
    else:  # a large catalog filtered down to a small subset: read just those vectors
        ids, rows = [], []
        wanted = sorted(allowed - set(exclude))
        for start in range(0, len(wanted), 900):
            chunk = wanted[start:start + 900]
            for item_id, blob in db.execute(
                    f"SELECT item_id, vector FROM embeddings WHERE method = ? AND item_id IN ({','.join('?' * len(chunk))})",
                    [method, *chunk]):
                ids.append(item_id)
                rows.append(unpack(blob))
        if not rows:
            return []
        matrix = np.vstack(rows)
        matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        keep = None
    sims = matrix @ vector
    if keep is not None:
        sims = np.where(keep, sims, -np.inf)
    depth = min(depth, int(np.isfinite(sims).sum()))
    if depth <= 0:
        return []
    top = np.argpartition(-sims, depth - 1)[:depth]
    top = top[np.lexsort((top, -sims[top]))]
    return [(ids[i], float(sims[i])) for i in top]


def _annoy(db, method, vector, depth, allowed, exclude, search_k) -> list[tuple[str, float]]:
    index = load_index(db, method)
    n = depth + len(exclude)
    while True:
        positions, sims = index.nearest(vector, n, search_k)
        found = [(index.ids[p], s) for p, s in zip(positions, sims)
                 if index.ids[p] not in exclude and (allowed is None or index.ids[p] in allowed)]
        if len(found) >= depth or n >= len(index.ids):
            return found[:depth]
        n = min(len(index.ids), n * 4)


def _chi2(db, method, vector, found) -> list[tuple[str, float]]:
    """Re-rank candidates by exact chi-square on histograms (similarity = -distance)."""
    from core.extractors.colour import chi2_distances
    if not found:
        return found
    ids, matrix, position = vectors_for(db, method)
    candidates = np.vstack([matrix[position[i]] for i, _ in found])
    distances = chi2_distances(vector, candidates)
    order = np.argsort(distances, kind="stable")
    return [(found[n][0], -float(distances[n])) for n in order]


def _display(db: sqlite_utils.Database, hits: list[Hit]) -> list[Hit]:
    """Fill the display fields of hits in one query."""
    if not hits:
        return hits
    marks = ",".join("?" * len(hits))
    order = "CASE role WHEN 'primary' THEN 0 WHEN 'cutout' THEN 1 ELSE 2 END"
    rows = {r["id"]: r for r in db.query(
        f"SELECT i.id, i.title, i.brand, i.category, i.colour, i.gender, i.price, i.currency, "
        f"(SELECT path FROM images g WHERE g.item_id = i.id AND g.status = 'ok' ORDER BY {order} LIMIT 1) AS image_path, "
        f"(SELECT url FROM images g WHERE g.item_id = i.id AND g.url IS NOT NULL ORDER BY {order} LIMIT 1) AS image_url "
        f"FROM items i WHERE i.id IN ({marks})", [h.item_id for h in hits])}
    for hit in hits:
        row = rows.get(hit.item_id, {})
        for field in ("title", "brand", "category", "colour", "gender", "price", "currency", "image_path", "image_url"):
            setattr(hit, field, row.get(field))
    return hits


def _query_brand(db: sqlite_utils.Database, item_id: str | None) -> str | None:
    if item_id is None:
        return None
    row = db.execute("SELECT brand FROM items WHERE id = ?", (str(item_id),)).fetchone()
    return row[0] if row else None


def search(db: sqlite_utils.Database, method: str | dict[str, float], *, item_id: str | None = None,
           image: bytes | None = None, text: str | None = None, k: int = 10, filters: dict | None = None,
           distance: str | None = None, search_k: int = -1) -> SearchResult:
    """The k items most like the query (an item id, photo bytes or text), best first."""
    if k < 1:
        raise SearchError("k must be at least 1")
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
    """Weighted sum of each method's cosine similarity over the union of their candidates."""
    total = sum(weights.values())
    queries = {m: query_vector(db, m, **query) for m in weights}
    candidates: set[str] = set()
    for m, vector in queries.items():
        candidates.update(i for i, _ in rank_vector(db, m, vector, k * FUSION_DEPTH, allowed, exclude))
    scores = {i: 0.0 for i in candidates}
    for m, vector in queries.items():
        ids, matrix, position = vectors_for(db, m)
        unit = vector / max(float(np.linalg.norm(vector)), 1e-12)
        for i in candidates:
            if i in position:
                scores[i] += weights[m] / total * float(matrix[position[i]] @ unit)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def search_many(db: sqlite_utils.Database, method: str, item_ids: list[str], k: int,
                filters: dict | None = None, display: bool = False) -> Iterator[tuple[str, list[Hit]]]:
    """Neighbours of many catalog items at once (export, precision): exact block search when it fits."""
    ids, matrix, position = vectors_for(db, method)
    brands = None
    if filters and filters.get("exclude_same_brand"):
        brand_of = dict(db.execute("SELECT id, lower(coalesce(brand, '')) FROM items"))
        brands = np.array([brand_of.get(i, "") for i in ids], dtype=object)
    base = {kk: v for kk, v in (filters or {}).items() if kk != "exclude_same_brand"}
    allowed = _allowed(db, base, None)
    keep = np.ones(len(ids), bool) if allowed is None else np.fromiter((i in allowed for i in ids), bool, len(ids))
    queries = [i for i in item_ids if i in position]
    for start in range(0, len(queries), 256):
        chunk = queries[start:start + 256]
        rows = np.array([position[i] for i in chunk])
        if len(ids) <= EXACT_LIMIT:
            sims = matrix[rows] @ matrix.T
            sims[:, ~keep] = -np.inf
            sims[np.arange(len(rows)), rows] = -np.inf
            if brands is not None:
                sims[brands[rows][:, None] == brands[None, :]] = -np.inf
            depth = min(k, len(ids) - 1)
            top = np.argpartition(-sims, depth - 1, axis=1)[:, :depth] if depth > 0 else np.zeros((len(rows), 0), int)
            for n, item_id in enumerate(chunk):
                order = top[n][np.lexsort((top[n], -sims[n, top[n]]))]
                ranked = [(ids[j], float(sims[n, j])) for j in order if np.isfinite(sims[n, j])]
                yield item_id, _hits(db, ranked, method, display)
        else:
            for item_id in chunk:
                brand = brands[position[item_id]] if brands is not None else None
                allowed_here = allowed
                if brand is not None:
                    allowed_here = {i for i, b in zip(ids, brands) if b != brand and (allowed is None or i in allowed)}
                ranked = rank_vector(db, method, matrix[position[item_id]], k, allowed_here, {item_id})
                yield item_id, _hits(db, ranked, method, display)


def _hits(db, ranked: list[tuple[str, float]], method: str, display: bool) -> list[Hit]:
    hits = [Hit(i, r, round(s, 6), method) for r, (i, s) in enumerate(ranked, start=1)]
    return _display(db, hits) if display else hits
