"""Metadata precision: how often a method's nearest neighbours share the query's attribute.

Every item with a vector (or a seeded sample of N) is a query; its neighbours exclude itself;
a neighbour is relevant when its attribute (articleType, baseColour, category, ...) equals the
query's; with several attributes (`"category,colour"`) only when every one of them does.
Exact search (core.search.neighbours.ExactNeighbours): cosine on the stored vectors, or
chi-square re-ranking of the best cosine candidates for colour histograms (`distance="chi2"`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from core.catalog.db import Catalog
from core.catalog.items import ITEM_COLUMNS
from core.catalog.vectors import load_matrix
from core.search import caches
from core.search.neighbours import ExactNeighbours
from core.search.space import MethodSpace


@dataclass(frozen=True)
class AttributePrecision:
    """A method's metadata precision (`evaluate`): P@k and mAP@k by an attribute over `queries` items."""

    method: str
    attribute: str
    k: int
    queries: int
    precision_at_k: float  # rounded to 4 places, as printed
    map_at_k: float
    distance: str


ALIASES = {"articleType": "category", "baseColour": "colour"}  # styles.csv names of item columns
GROUPING_COLUMNS = ("category", "colour", "brand", "gender")


def attribute_values(db: Catalog, ids: list[str], attribute: str) -> list[str | None]:
    """The attribute per item: an items column (category, colour, ...) or a key of its attributes JSON.

    The styles.csv names map onto columns: articleType -> category, baseColour -> colour.
    """
    column = ALIASES.get(attribute, attribute)
    if column in ITEM_COLUMNS:
        found = dict(db.execute(f"SELECT id, {column} FROM items"))  # column from a fixed set
    else:
        found = {i: json.loads(a).get(attribute) for i, a in db.execute("SELECT id, attributes FROM items")}
    return [found.get(i) for i in ids]


def _too_few(db: Catalog, method: str, attribute: str, embedded: int, valued: int, k: int) -> str:
    """Why there are not more than k items to evaluate on, naming what is missing: vectors, the attribute, or items."""
    if embedded == 0:
        return f"no {method} vectors in the catalog; embed the catalog first (`python -m core embed --method {method}`)"
    if valued == 0:
        known = ", ".join(grouping_fields(db)) or "none with two values or more"
        return f"no item with {method} vectors has a value for {attribute!r}; attributes that group items here: {known}"
    return (
        f"-k {k} needs more than {k} items with {method} vectors and a value for {attribute}; "
        f"there are {valued}: choose a smaller -k"
    )


def grouping_fields(db: Catalog) -> list[str]:
    """Fields that can group items (for tuning targets or metadata precision): the columns category,
    colour, brand and gender, then the keys of the attributes JSON, each when it has at least two
    distinct non-empty values. Keys that `attribute_values` reads from a column are left out.

    Cached per process until the items change (their count, newest row or last update move): the
    Methods page asks on every render and the scan takes seconds on a large catalog."""
    fingerprint = db.execute("SELECT count(*), max(rowid), max(updated_at) FROM items").fetchone()
    path = str(getattr(db, "path", id(db)))
    return list(caches.current(caches.FIELDS, (path,), tuple(fingerprint), lambda: _grouping_fields(db)))


def _grouping_fields(db: Catalog) -> list[str]:
    columns = [
        c
        for c in GROUPING_COLUMNS
        if db.execute(  # c from a fixed set
            f"SELECT count(DISTINCT {c}) FROM items WHERE {c} IS NOT NULL AND {c} != ''"
        ).fetchone()[0]
        >= 2
    ]
    keys = [
        k
        for (k,) in db.execute(
            "SELECT j.key FROM items, json_each(coalesce(items.attributes, '{}')) AS j "
            "WHERE j.type NOT IN ('null', 'object', 'array') AND j.value != '' "
            "GROUP BY j.key HAVING count(DISTINCT j.value) >= 2 ORDER BY j.key"
        )
        if k not in ITEM_COLUMNS and k not in ALIASES
    ]
    return columns + keys


def joint_values(db: Catalog, ids: list[str], attributes: str | list[str]) -> list[tuple | None]:
    """Per item, the tuple of its values of every attribute (`"category,colour"` or a list);
    None when any of them is missing or empty."""
    names = [a.strip() for a in attributes.split(",")] if isinstance(attributes, str) else list(attributes)
    columns = [attribute_values(db, ids, name) for name in names if name]
    return [None if any(v in (None, "") for v in row) else tuple(row) for row in zip(*columns)]


def relevance(labels, found: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(query, rank) -> whether that neighbour (a row number in `found`) has its query's label."""
    values = np.asarray(labels)
    return values[np.asarray(found, dtype=np.int64)] == values[np.asarray(queries, dtype=np.int64)][:, None]


def precision_at_k(relevant: np.ndarray, k: int) -> float:
    """Mean precision@k of a `relevance` table: the share of relevant neighbours in each query's top k."""
    return float(relevant[:, :k].mean())


def precision_scores(labels: list, found: np.ndarray, queries: np.ndarray, k: int) -> tuple[float, float]:
    """(mean precision@k, mean average precision@k) with relevance = equal label."""
    values = np.asarray(labels, dtype=object)
    counts: dict = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    relevant = relevance(values, found, queries)[:, :k]
    average_precisions = []
    for q, row in zip(queries, relevant):
        total_relevant = min(k, counts[values[q]] - 1)
        hits = np.cumsum(row) / np.arange(1, k + 1)
        average_precisions.append(float((hits * row).sum() / total_relevant) if total_relevant else 0.0)
    return precision_at_k(relevant, k), float(np.mean(average_precisions))


def evaluate(
    space: MethodSpace,
    attribute: str = "articleType",
    k: int = 10,
    queries: int | None = None,
    seed: int = 0,
    distance: str = "cosine",
) -> AttributePrecision:
    """Precision@k and mAP@k of a method's stored vectors against an attribute (or several, comma-separated:
    relevant only when all match; items missing any of them are left out)."""
    ids, vectors = load_matrix(space.catalog, space.name, space.searched_version())
    return evaluate_vectors(space.catalog, space.name, ids, vectors, attribute, k, queries, seed, distance)


def evaluate_vectors(
    db: Catalog,
    method: str,
    ids: list[str],
    vectors: np.ndarray,
    attribute: str = "articleType",
    k: int = 10,
    queries: int | None = None,
    seed: int = 0,
    distance: str = "cosine",
) -> AttributePrecision:
    """`evaluate` of any vectors of the catalog's items (rows aligned with `ids`), named `method` in the result."""
    if k < 1 or (queries is not None and queries < 1):
        raise ValueError(f"k and queries must be at least 1, got k={k}, queries={queries}")
    labels = joint_values(db, ids, attribute)
    keep = np.array([v is not None for v in labels], dtype=bool)
    if keep.sum() <= k:
        raise ValueError(_too_few(db, method, attribute, len(ids), int(keep.sum()), k))
    ids = [i for i, kept in zip(ids, keep) if kept]
    vectors = vectors[keep]
    codes: dict[tuple, int] = {}
    classes = [codes.setdefault(v, len(codes)) for v in labels if v is not None]
    query_rows = np.arange(len(ids))
    if queries and queries < len(ids):
        query_rows = np.sort(np.random.default_rng(seed).choice(len(ids), queries, replace=False))
    index = ExactNeighbours(ids, vectors, rerank=True)
    ranked = index.neighbours(vectors[query_rows], k, exclude=[{ids[q]} for q in query_rows], distance=distance)
    found = np.array([[index.position[i] for i, _ in row] for row in ranked])
    precision, mean_ap = precision_scores(classes, found, query_rows, k)
    return AttributePrecision(
        method=method,
        attribute=attribute,
        k=k,
        queries=int(len(query_rows)),
        precision_at_k=round(precision, 4),
        map_at_k=round(mean_ap, 4),
        distance=distance,
    )
