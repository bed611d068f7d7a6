"""Near-duplicate finder: pairs of catalog items whose vectors are almost the same.

The same product listed twice, or by two merchants, sits at cosine similarity close to 1 with
any image method. Each item's nearest neighbours (exactly, or through the Annoy index on large
catalogs) are checked against the threshold, looking deeper for items whose every neighbour
passes (a product listed many times); every pair is reported once, most similar first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tqdm import tqdm

from core.catalog.items import ItemCard, item_cards
from core.catalog.vectors import item_ids_with_vectors, missing_vectors
from core.search.queries import search_many
from core.search.space import MethodSpace

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


def find_duplicates(space: MethodSpace, threshold: float = 0.95, progress: bool = True) -> list[DuplicatePair]:
    """Every pair of items at cosine similarity >= threshold in a method's space, most similar first."""
    if not 0 < threshold <= 1:
        raise ValueError("threshold is a cosine similarity between 0 and 1, e.g. 0.95")
    db, method = space.catalog, space.name
    todo = item_ids_with_vectors(db, method, space.searched_version())
    if not todo:
        raise ValueError(missing_vectors(method))
    pairs: dict[tuple[str, str], float] = {}
    depth, total = NEIGHBOURS, len(todo)
    while todo and depth < 4 * total:
        deeper = []
        for item_id, hits in tqdm(
            search_many(space, todo, depth), total=len(todo), desc=f"duplicates {method}", disable=not progress
        ):
            close = [h for h in hits if h.score >= threshold]
            for hit in close:
                key = (min(item_id, hit.item_id), max(item_id, hit.item_id))
                pairs[key] = max(pairs.get(key, -1.0), hit.score)
            if close and len(close) == len(hits) == depth:
                deeper.append(item_id)  # every neighbour passed: there may be more
        todo, depth = deeper, depth * 4
    cards = item_cards(db, {i for pair in pairs for i in pair})
    found = []
    for (a, b), score in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])):
        card_a, card_b = cards.get(a) or ItemCard(a), cards.get(b) or ItemCard(b)
        brand = (card_a.brand or "").casefold()
        found.append(
            DuplicatePair(
                a,
                b,
                round(score, 6),
                card_a.title,
                card_b.title,
                bool(brand) and brand == (card_b.brand or "").casefold(),
            )
        )
    return found
