"""The curated look-alike list: what the shop shows for a query, and why each entry is there.

One function makes every list that leaves Lookalike (the export, the API's similar-items route and
the Search page), so their answers are the same. For a catalog item's list:

1. its **pins** (`curate pin`) take their places, whatever the model thinks;
2. the candidates the team **accepted** for it (latest verdict of the pair, whichever method's list
   showed it; core/curation/verdicts.py) come first, best first; those it **rejected** never appear;
3. the places left are filled from the model's candidates (its top POOL_FACTOR x k in the method's
   own space), re-ranked toward the accepted look-alikes (and `like`) and away from the rejected ones
   (and `unlike`): `steered` (core/curation/steering.py); without any verdict or steer they keep the
   model's order: `model`;
4. **hidden** items appear nowhere, and the catalog-wide **rules** (core/curation/rules.py) drop
   candidates before the list is cut to k, so it keeps k items when the catalog has them; pins pass
   the rules (a pin is a person's explicit choice) but never a hide.

Photo and text queries get the same hides, steering and rules (the item-relative rules need an item).
`raw=True` gives the model's list untouched (`core.search.queries.search`): hidden and rejected
items included, no rule applied, every reason `model`. A fusion of several methods (a dict of space ->
weight, as `--method a=0.7,b=0.3` names it) is searched as the model ranks it too: curation works in
one method's space (hybrid and learnt methods are one method each).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Set
from dataclasses import asdict, dataclass, field

import numpy as np

from core.catalog import filters as filtering
from core.catalog.db import Catalog
from core.catalog.images import Photo
from core.catalog.items import catalog_id
from core.curation.decisions import Snapshot, curation_snapshot
from core.curation.rules import Fields, item_fields, out_of_stock, passes
from core.curation.steering import diverse_order, steered_scores
from core.curation.verdicts import ItemVerdicts, item_verdicts
from core.methods.distances import unit
from core.search.queries import (
    Hit,
    SearchError,
    Spaces,
    allowed_items,
    brand_groups,
    display_hits,
    query_brand,
    query_vector,
    search,
    search_query,
)
from core.search.space import MethodSpace, gone_items

REASONS = ("pinned", "accepted", "steered", "model")
POOL_FACTOR = 10  # a steered or ruled list re-ranks the model's top POOL_FACTOR x k candidates,
POOL_MIN = 100  # and at least this many;
RULED_FACTOR = 2  # a list only the rules change starts from the model's top RULED_FACTOR x k
_BLOCK = 256  # queries per neighbours call
_MANY = 2048  # items curated together: their queries are grouped by pool depth into blocks


@dataclass
class CuratedHit(Hit):
    """A result and why it is in the list: pinned, accepted, steered or model."""

    reason: str = "model"


@dataclass
class CuratedResult:
    query: dict
    results: list[CuratedHit]
    notes: list[str] = field(default_factory=list)
    raw: bool = False  # the model's list untouched

    def as_dict(self) -> dict:
        return {
            "query": self.query,
            "raw": self.raw,
            "results": [asdict(h) for h in self.results],
            "notes": self.notes,
        }


@dataclass
class _Ask:
    """One list to make: the query item (None for a photo or text), its unit vector, the steers."""

    item_id: str | None
    vector: np.ndarray
    like: frozenset[str] = frozenset()
    unlike: frozenset[str] = frozenset()


class Curator:
    """What curating a space's lists reads once: the decisions in force, verdicts, the rules' fields,
    the filters' allowed items and the neighbour backend. Open one per request, or one per export."""

    def __init__(self, space: MethodSpace, filters: dict | None = None, every_item: bool = False):
        self.space, self.db = space, space.catalog
        self.snapshot: Snapshot = curation_snapshot(self.db)
        base = {key: v for key, v in (filters or {}).items() if key != "exclude_same_brand"}
        self.allowed = allowed_items(self.db, base, None)
        self.same_brand = brand_groups(self.db) if (filters or {}).get("exclude_same_brand") else None
        self.index = space.neighbour_index(self.allowed)
        self.distance = space.distance()
        self.rules = self.snapshot.rules
        self._verdicts: dict[str, ItemVerdicts] = item_verdicts(self.db) if every_item else {}
        self._every_item = every_item
        # hidden and gone (left the feed) items: one object, that the neighbour backend reads once per block
        gone, hidden = gone_items(self.db), self.snapshot.hidden
        self._hidden = gone | hidden if hidden else gone
        self._out_of_stock = out_of_stock(self.db) if self.rules.in_stock and every_item else None
        needs_fields = self.rules.relative() or bool(self.rules.max_per_brand)  # in_stock alone: a set
        self._fields: dict[str, Fields] = item_fields(self.db) if every_item and needs_fields else {}

    # --- reads --------------------------------------------------------------------------------------

    def _verdicts_of(self, item_ids: Sequence[str | None]) -> None:
        if not self._every_item:
            wanted = [i for i in item_ids if i is not None and i not in self._verdicts]
            found = item_verdicts(self.db, wanted) if wanted else {}
            self._verdicts.update({i: found.get(i, ItemVerdicts()) for i in wanted})

    def _fields_of(self, item_ids: set[str]) -> dict[str, Fields]:
        missing = [i for i in item_ids if i not in self._fields]
        if missing and not self._every_item:
            self._fields.update(item_fields(self.db, missing))
        return self._fields

    def _usable(self, item_id: str, ask: _Ask) -> bool:
        """Whether a candidate may be in this query's list at all (filters, hides, itself, its brand)."""
        if item_id == ask.item_id or item_id in self._hidden:  # a pin or an accepted item that is hidden or gone
            return False
        if self.allowed is not None and item_id not in self.allowed:
            return False
        return not (self.same_brand and ask.item_id and item_id in self.same_brand.get(ask.item_id, ()))

    # --- lists --------------------------------------------------------------------------------------

    def many(self, item_ids: list[str], k: int) -> Iterator[tuple[str, list[CuratedHit]]]:
        """(item id, its curated list) for catalog items with a vector that are not hidden (no display fields)."""
        hidden = self.snapshot.hidden
        for start in range(0, len(item_ids), _MANY):
            block = [i for i in item_ids[start : start + _MANY] if i not in hidden]
            found, matrix = self.space.stored_vectors(block)
            row = {item_id: n for n, item_id in enumerate(found)}
            queries = [i for i in block if i in row]
            yield from zip(queries, self.lists([_Ask(i, matrix[row[i]]) for i in queries], k))

    def lists(self, asks: list[_Ask], k: int) -> list[list[CuratedHit]]:
        """The curated list of each ask, in order."""
        self._verdicts_of([a.item_id for a in asks])
        plans = [self._plan(ask, k) for ask in asks]
        pools: list[tuple[list[tuple[str, float]], list[str]]] = [([], []) for _ in asks]
        todo = {n: p.depth + (a.item_id is not None) for n, (a, p) in enumerate(zip(asks, plans))}
        while todo:  # ask in blocks of one depth; ask again 4x deeper where the rules leave fewer than k
            again = {}
            for depth in sorted(set(todo.values())):
                rows = [n for n, d in todo.items() if d == depth]
                for start in range(0, len(rows), _BLOCK):
                    block = rows[start : start + _BLOCK]
                    found = self.index.neighbours(
                        np.vstack([asks[n].vector for n in block]),
                        depth,
                        self.allowed,
                        [plans[n].exclude for n in block],
                        self.distance,
                    )
                    for n, ranked in zip(block, found):
                        full = len(ranked) == depth
                        if asks[n].item_id is not None:  # asked for one more: the query item may be among them
                            ranked = [pair for pair in ranked if pair[0] != asks[n].item_id][: depth - 1]
                        passing = self._passing(asks[n], [i for i, _ in ranked])
                        pools[n] = ranked, passing
                        if full and len(self._capped(passing, [])) < k:
                            again[n] = depth * 4
            todo = again
        return [self._arrange(ask, p, *pool, k) for ask, p, pool in zip(asks, plans, pools)]

    def _plan(self, ask: _Ask, k: int) -> _Plan:
        verdicts = self._verdicts.get(ask.item_id, ItemVerdicts()) if ask.item_id else ItemVerdicts()
        rejected = verdicts.rejected | ask.unlike
        accepted = {a for a in verdicts.accepted - rejected if self._usable(a, ask)}
        pins = [(pos, c) for pos, c in self.snapshot.pins.get(ask.item_id or "", []) if self._usable(c, ask)]
        steer = bool(accepted or ask.like or rejected)
        depth = max(POOL_MIN, POOL_FACTOR * k) if steer else RULED_FACTOR * k if self.rules.any() else k
        if not (pins or accepted or rejected or self.same_brand):  # most items: share the hidden set
            return _Plan(pins, accepted, rejected, self._hidden, steer, depth)
        exclude = {c for _, c in pins} | accepted | rejected | self._hidden
        if ask.item_id:
            exclude |= self.same_brand.get(ask.item_id, {ask.item_id}) if self.same_brand else {ask.item_id}
        return _Plan(pins, accepted, rejected, exclude, steer, depth)

    def _passing(self, ask: _Ask, ids: list[str]) -> list[str]:
        """Those of `ids` that pass the filtering rules, in order."""
        if not self.rules.filters():
            return ids
        if not self.rules.relative() and self._out_of_stock is not None:
            return [i for i in ids if i not in self._out_of_stock]
        fields = self._fields_of({*ids, *([ask.item_id] if ask.item_id else [])})
        query = fields.get(ask.item_id) if ask.item_id else None
        return [i for i in ids if passes(self.rules, fields.get(i), query)]

    def _capped(self, ids: list[str], pins: list[str]) -> list[str]:
        """`ids` in order, without those whose brand already has max_per_brand items (pins count, and stay)."""
        cap = self.rules.max_per_brand
        if not cap:
            return ids
        fields = self._fields_of({*ids, *pins})
        counts: dict[str, int] = {}
        for c in pins:
            if brand := (fields[c].brand if c in fields else None):
                counts[brand] = counts.get(brand, 0) + 1
        kept = []
        for item_id in ids:
            brand = fields[item_id].brand if item_id in fields else None
            if brand and counts.get(brand, 0) >= cap:
                continue
            if brand:
                counts[brand] = counts.get(brand, 0) + 1
            kept.append(item_id)
        return kept

    def _arrange(
        self, ask: _Ask, plan: _Plan, pool: list[tuple[str, float]], candidates: list[str], k: int
    ) -> list[CuratedHit]:
        rules, scores = self.rules, dict(pool)
        if not (plan.steer or plan.pins or rules.diversity or rules.max_per_brand):  # the model's order, filtered
            return [
                CuratedHit(i, rank, round(scores[i], 6), self.space.name) for rank, i in enumerate(candidates[:k], 1)
            ]
        accepted = self._passing(ask, sorted(plan.accepted))
        needs_vectors = plan.steer or accepted or plan.pins or rules.diversity
        vectors: dict[str, np.ndarray] = {}
        if needs_vectors:
            wanted = set(candidates) | set(accepted) | ask.like | plan.rejected | {c for _, c in plan.pins}
            ids, matrix = self.space.stored_vectors(wanted)
            vectors = dict(zip(ids, matrix))
        for item_id in [*accepted, *(c for _, c in plan.pins)]:
            if item_id not in scores and item_id in vectors:
                scores[item_id] = float(vectors[item_id] @ ask.vector)
        accepted = sorted((a for a in accepted if a in vectors), key=lambda a: (-scores[a], a))
        reason = "model"
        if candidates and (plan.steer or rules.diversity):
            matrix = np.vstack([vectors[c] for c in candidates])
            liked = [vectors[i] for i in sorted(set(accepted) | ask.like) if i in vectors]
            disliked = [vectors[i] for i in sorted(plan.rejected) if i in vectors]
            steered = steered_scores(ask.vector, matrix, _rows(liked, matrix), _rows(disliked, matrix))
            if plan.steer:
                reason = "steered"
                order = sorted(range(len(candidates)), key=lambda n: -steered[n])  # stable: model order on ties
            else:
                order = list(range(len(candidates)))
            if rules.diversity:
                chosen = _rows([vectors[i] for i in [*accepted, *(c for _, c in plan.pins)] if i in vectors], matrix)
                limit = None if rules.max_per_brand else k  # the brand cap may pass over some
                picked = diverse_order(steered[order], matrix[order], chosen, rules.diversity, limit)
                order = [order[n] for n in picked]
            candidates = [candidates[n] for n in order]
        reasons = dict.fromkeys(candidates, reason) | dict.fromkeys(accepted, "accepted")
        kept = self._capped([*accepted, *candidates], [c for _, c in plan.pins])
        body = [(i, reasons[i]) for i in kept]
        pins = [(pos, c) for pos, c in plan.pins if pos <= k]
        placed = body[: k - len(pins)]
        for pos, c in pins:
            placed.insert(min(pos - 1, len(placed)), (c, "pinned"))
        return [
            CuratedHit(i, rank, round(scores.get(i, 0.0), 6), self.space.name, reason=why)
            for rank, (i, why) in enumerate(placed[:k], start=1)
        ]


@dataclass
class _Plan:
    pins: list[tuple[int, str]]
    accepted: set[str]
    rejected: set[str]
    exclude: Set[str]
    steer: bool
    depth: int  # how many of the model's candidates to ask for first


def _rows(vectors: list[np.ndarray], like: np.ndarray) -> np.ndarray:
    return np.vstack(vectors) if vectors else np.zeros((0, like.shape[1]), like.dtype)


def _known(db: Catalog, ids: Sequence[str], what: str) -> frozenset[str]:
    found = set()
    for item_id in ids:
        item_id = catalog_id(db, str(item_id).strip())
        if db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is None:
            raise SearchError(f"{what} {item_id!r} is not a catalog item")
        found.add(item_id)
    return frozenset(found)


def curated_search(
    space: Spaces,
    *,
    item_id: str | None = None,
    image: bytes | Photo | None = None,
    text: str | None = None,
    k: int = 10,
    filters: dict | None = None,
    like: Sequence[str] = (),
    unlike: Sequence[str] = (),
    raw: bool = False,
) -> CuratedResult:
    """The curated list for a query (an item id, photo bytes or text), best first, each entry with its
    reason; `raw` gives the model's list untouched (`search`). `like` / `unlike`: item ids to steer
    toward / away from (unliked items are left out)."""
    if raw or isinstance(space, dict):
        if like or unlike:
            raise SearchError(
                "like and unlike steer one method's curated list; leave out raw"
                if raw
                else "like and unlike steer one method's list; give one method, not a fusion"
            )
        result = search(space, item_id=item_id, image=image, text=text, k=k, filters=filters)
        hits = [CuratedHit(**asdict(h), reason="model") for h in result.results]
        notes = result.notes if raw else [*result.notes, "a fusion of methods is the models' list: curate one method"]
        return CuratedResult(result.query, hits, notes, raw=True)
    if k < 1:
        raise SearchError("k must be at least 1")
    if sum(q is not None for q in (item_id, image, text)) != 1:
        raise SearchError("give exactly one of an item id, a photo or a text to search with")
    db = space.catalog
    if item_id is not None:
        item_id = catalog_id(db, str(item_id))
        found, matrix = space.stored_vectors([item_id])
        vector = matrix[0] if found else space.item_vector(item_id)  # SearchError saying why it has none
    else:
        vector = query_vector(space, image=image, text=text)
    likes, unlikes = _known(db, like, "like"), _known(db, unlike, "unlike")
    curator = Curator(space, filters)
    hits = curator.lists([_Ask(item_id, unit(vector), likes, unlikes)], k)[0]
    query = search_query(space, item_id, image, text, k, filters)
    query.update(like=sorted(likes), unlike=sorted(unlikes))
    notes = [note for note in [space.stale_note()] if note]
    if item_id in curator.snapshot.hidden:
        notes.append(f"{item_id} is hidden: it appears in no list (`curate unhide {item_id}`)")
    if len(hits) < k:  # which filter empties the list, as `search` says it; else the hides and rules did
        brand = query_brand(db, item_id)
        active = filtering.is_active(filters, brand)
        left = filtering.explain_empty(db, filters or {}, brand) if active else "the hides and rules leave no more"
        notes.append(f"{len(hits)} of {k} results: {left}")
    return CuratedResult(query, display_hits(db, hits), notes)


def curated_many(
    space: MethodSpace, item_ids: list[str], k: int, filters: dict | None = None
) -> Iterator[tuple[str, list[CuratedHit]]]:
    """The curated lists of many catalog items, each as `curated_search` makes it, with every decision,
    verdict and rule field read once. Items without a vector, and hidden items, are skipped."""
    return Curator(space, filters, every_item=True).many(item_ids, k)
