"""Near-duplicate finder: pairs of catalog items whose vectors are almost the same.

The same product listed twice, or by two merchants, sits at cosine similarity close to 1 with
any image method. Each item's nearest neighbours are checked against the threshold; every
pair is reported once, most similar first.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import sqlite_utils
from tqdm import tqdm

from core.search import search_many
from core.vectors import load_matrix

NEIGHBOURS = 10


@dataclass(frozen=True)
class DuplicatePair:
    a: str
    b: str
    similarity: float
    a_title: str | None
    b_title: str | None
    same_brand: bool

    def as_dict(self) -> dict:
        return asdict(self)


def find_duplicates(db: sqlite_utils.Database, method: str, threshold: float = 0.95,
                    progress: bool = True) -> list[DuplicatePair]:
    """Every pair at cosine similarity >= threshold (checked among each item's nearest neighbours)."""
    if not 0 < threshold <= 1:
        raise ValueError("threshold is a cosine similarity between 0 and 1, e.g. 0.95")
    ids, _ = load_matrix(db, method)
    info = {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, title, lower(coalesce(brand, '')) FROM items")}
    pairs: dict[tuple[str, str], float] = {}
    for item_id, hits in tqdm(search_many(db, method, ids, NEIGHBOURS), total=len(ids),
                              desc=f"duplicates {method}", disable=not progress):
        for hit in hits:
            if hit.score >= threshold:
                key = tuple(sorted((item_id, hit.item_id)))
                pairs[key] = max(pairs.get(key, -1.0), hit.score)
    return [DuplicatePair(a, b, round(score, 6), info.get(a, (None, ""))[0], info.get(b, (None, ""))[0],
                          bool(info.get(a, (None, ""))[1]) and info.get(a, (None, ""))[1] == info.get(b, (None, ""))[1])
            for (a, b), score in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))]
