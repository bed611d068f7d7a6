"""Nearest neighbours of query vectors: one interface, an exact (NumPy) and an Annoy backend.

Every backend answers `neighbours(query_vectors, k, allowed=None, exclude=None, distance="cosine")`:
for each query vector, the k best `(item id, similarity)` pairs, best first, ties by item id,
among the items in `allowed` (None: every item) and not in that query's `exclude` (one set for
every query, or one collection per query). Similarity is cosine, or another distance of the
method's metric (core/methods/distances.py: `distance="chi2"` for colour histograms stored in
Hellinger form, scored as minus the chi-square distance). Callers never branch on the backend: a
method's space (core/search/space.py) picks one by its registered name (core/search/backends.py).

- `ExactNeighbours` scores every item with matrix products, in blocks of queries. Another distance
  is exact over every allowed item, or, with `rerank`, a re-ranking of the best cosine candidates.
- `AnnoyNeighbours` asks a memory-mapped Annoy index for candidates, widening the request until k
  of them pass the filters (or every item was seen); another distance re-ranks the best cosine ones.
  Items in its `removed` set (changed or gone since the index was built) are never returned.
- `ScreenedNeighbours` gives ExactNeighbours' answer scoring only the items whose bound (from a
  projection on the items' main directions) can beat the k-th best: for a delta of thousands of vectors.
- `MergedNeighbours` answers from an Annoy index and a small exact (or screened) index of what changed
  since it was built (the delta), best of both: a live catalog's changes are found at once, without a rebuild.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence, Set
from functools import cached_property
from typing import Self

import numpy as np

from core.methods.distances import RESCORERS, Scorer, unit
from core.search.index import LoadedIndex

Ranked = list[tuple[str, float]]
Exclude = Set[str] | Sequence[Collection[str]] | None

RERANK_DEPTH = 10  # another distance re-ranks the k x RERANK_DEPTH best cosine candidates,
RERANK_MIN = 100  # and at least this many
BLOCK = 256  # queries per matrix product
EXCLUDED_KEPT = 100  # an exact index keeps the positions of the last frozen set of this many excluded ids or more
SCREEN_RANK = 64  # ScreenedNeighbours: dimensions of the projection that bounds the scores,
SCREEN_OVERSAMPLE = 16  # and the extra directions its range finder probes,
SCREEN_SAMPLE = 1_000  # in about this many of the items;
SCREEN_DEPTH = 10  # the k x SCREEN_DEPTH items of the highest bounds are scored first (at least SCREEN_MIN),
SCREEN_MIN = 100  # then those whose bound reaches the k-th best of them
SCREEN_SLACK = 1e-4  # the margin bounds are compared with, for float rounding


def best_first(pairs) -> Ranked:
    """(item id, score) pairs sorted best first, ties by item id."""
    return sorted(((i, float(s)) for i, s in pairs), key=lambda p: (-p[1], p[0]))


def nearest_rows(matrix: np.ndarray, query_rows: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of each query row's k nearest rows of `matrix` by cosine, itself excluded, nearest
    first (ties by row): the exact backend for code that works on positions (evaluation, tuning)."""
    ids = [f"{n:010d}" for n in range(len(matrix))]
    ranked = ExactNeighbours(ids, matrix).neighbours(matrix[query_rows], k, exclude=[{ids[q]} for q in query_rows])
    return np.array([[int(i) for i, _ in row] for row in ranked], dtype=np.int64).reshape(len(query_rows), -1)


class NeighbourIndex(ABC):
    """The neighbours of query vectors among a set of items; see the module docstring."""

    ids: list[str]

    def neighbours(
        self,
        query_vectors: np.ndarray,
        k: int,
        allowed: Set[str] | None = None,
        exclude: Exclude = None,
        distance: str = "cosine",
    ) -> list[Ranked]:
        """For each query vector (a row, or one vector), its k best (item id, similarity), best first."""
        queries = unit(np.atleast_2d(query_vectors))
        excludes = _per_query(exclude, len(queries))
        if k < 1 or self._empty() or (allowed is not None and not allowed):
            return [[] for _ in queries]
        if distance == "cosine":
            return self._kneighbors(queries, k, allowed, excludes)
        if distance in RESCORERS:
            return self._rescored(queries, k, allowed, excludes, RESCORERS[distance])
        raise ValueError(f"unknown distance {distance!r}; use cosine or {' or '.join(RESCORERS)}")

    def _empty(self) -> bool:
        return not self.ids

    @abstractmethod
    def _kneighbors(
        self, queries: np.ndarray, k: int, allowed: Set[str] | None, excludes: list[Collection[str]]
    ) -> list[Ranked]:
        """Cosine neighbours of unit query rows."""

    @abstractmethod
    def vectors(self, ids: list[str]) -> np.ndarray:
        """The unit vectors of these items (all of them must be in the index), in that order."""

    def _rescored(
        self, queries: np.ndarray, k: int, allowed: Set[str] | None, excludes: list[Collection[str]], score: Scorer
    ) -> list[Ranked]:
        """Re-rank the best cosine candidates by another distance's scores."""
        found = self._kneighbors(queries, max(k * RERANK_DEPTH, RERANK_MIN), allowed, excludes)
        ranked = []
        for query, candidates in zip(queries, found):
            ids = [i for i, _ in candidates]
            ranked.append(best_first(zip(ids, score(query, self.vectors(ids))))[:k] if ids else [])
        return ranked


def _per_query(exclude: Exclude, n: int) -> list[Collection[str]]:
    if exclude is None:
        return [()] * n
    if isinstance(exclude, Set):
        return [exclude] * n
    if len(exclude) != n or any(isinstance(e, str) for e in exclude):
        raise ValueError("exclude is one set of item ids, or one collection of item ids per query")
    return list(exclude)


class ExactNeighbours(NeighbourIndex):
    """Every item scored with NumPy."""

    def __init__(self, ids: list[str], matrix: np.ndarray | None, rerank: bool = False):
        self.ids = list(ids)
        self.matrix = unit(matrix) if matrix is not None and len(self.ids) else np.zeros((0, 0), np.float32)
        self.position = {item_id: n for n, item_id in enumerate(self.ids)}
        self.rerank = rerank
        self._last_excluded: tuple[frozenset[str], np.ndarray] | None = None

    def vectors(self, ids: list[str]) -> np.ndarray:
        return self.matrix[[self.position[i] for i in ids]]

    def updated(self, dropped: Set[str], ids: list[str], matrix: np.ndarray | None) -> ExactNeighbours:
        """A copy with the rows of `dropped` taken out and `ids` (the rows of `matrix`) added after the
        rows it keeps, which are copied once and not redone (a sync's batch: a few rows new, thousands kept)."""
        new = set(ids)
        kept = np.fromiter((p for p, i in enumerate(self.ids) if i not in dropped and i not in new), np.int64)
        if not len(kept):
            return self._fresh(ids, matrix)
        added = self._rows_of(unit(matrix)) if ids and matrix is not None else None
        rows = []
        for n, old in enumerate(self._per_row()):
            out = np.empty((len(kept) + len(ids), *old.shape[1:]), old.dtype)
            np.take(old, kept, axis=0, out=out[: len(kept)])
            if added is not None:
                out[len(kept) :] = added[n]
            rows.append(out)
        return self._assembled([self.ids[p] for p in kept] + list(ids), rows)

    def _fresh(self, ids: list[str], matrix: np.ndarray | None) -> ExactNeighbours:
        return ExactNeighbours(ids, matrix, self.rerank)

    def _per_row(self) -> list[np.ndarray]:
        """Its arrays with a row per item, in the order of its ids."""
        return [self.matrix]

    def _rows_of(self, matrix: np.ndarray) -> list[np.ndarray]:
        """The `_per_row` arrays of new unit vectors."""
        return [matrix]

    def _assembled(self, ids: list[str], rows: list[np.ndarray]) -> Self:
        made = copy.copy(self)  # its settings (rerank, basis), not its look-ups
        made.ids, made.matrix = ids, rows[0]
        made.position = {item_id: n for n, item_id in enumerate(ids)}
        made._last_excluded = None
        return made

    def _positions(self, ids: Collection[str]) -> np.ndarray:
        return np.fromiter((p for i in ids if (p := self.position.get(i)) is not None), np.int64)

    def _mask(self, allowed: Set[str] | None) -> np.ndarray | None:
        """Which rows may be returned (None: every row)."""
        if allowed is None:
            return None
        keep = np.zeros(len(self.ids), bool)
        keep[self._positions(allowed)] = True
        return keep

    def _kneighbors(self, queries, k, allowed, excludes, floors: np.ndarray | None = None) -> list[Ranked]:
        """`floors`: a score each query already has k items at (MergedNeighbours' bulk): a subclass may
        leave out what scores below it; this one scores every item."""
        keep, memo = self._mask(allowed), dict[int, np.ndarray]()
        found = []
        for start in range(0, len(queries), BLOCK):
            scores = queries[start : start + BLOCK] @ self.matrix.T
            found += self._top(scores, k, keep, excludes[start : start + BLOCK], memo)
        return found

    def _rescored(self, queries, k, allowed, excludes, score: Scorer) -> list[Ranked]:
        if self.rerank:
            return super()._rescored(queries, k, allowed, excludes, score)
        keep, memo = self._mask(allowed), dict[int, np.ndarray]()
        return [self._top(score(q, self.matrix)[None, :], k, keep, [ex], memo)[0] for q, ex in zip(queries, excludes)]

    def _filter(self, scores: np.ndarray, keep: np.ndarray | None, excludes: list[Collection[str]], memo: dict) -> None:
        """Score -inf, in place, what each row may not return."""
        if keep is not None:
            scores[:, ~keep] = -np.inf
        for row, excluded in enumerate(excludes):
            if excluded:  # a collection shared by many queries is looked up once
                key = id(excluded)
                if key not in memo:
                    memo[key] = self._excluded_positions(excluded)
                scores[row, memo[key]] = -np.inf

    def _excluded_positions(self, excluded: Collection[str]) -> np.ndarray:
        """The positions of excluded items; those of the last large frozen set kept for the next search
        that excludes an equal one (each request's hidden and gone items: a new set with the same ids)."""
        last = self._last_excluded
        if last is not None and isinstance(excluded, frozenset) and last[0] == excluded:
            return last[1]
        positions = self._positions(excluded)
        if isinstance(excluded, frozenset) and len(excluded) >= EXCLUDED_KEPT:
            self._last_excluded = (excluded, positions)
        return positions

    def _top(
        self, scores: np.ndarray, k: int, keep: np.ndarray | None, excludes: list[Collection[str]], memo: dict
    ) -> list[Ranked]:
        """The k best finite scores of each row, every item tied with the k-th considered."""
        self._filter(scores, keep, excludes, memo)
        depth = min(k, scores.shape[1])
        kth = -np.partition(-scores, depth - 1, axis=1)[:, depth - 1]
        ranked = []
        for row, cut in zip(scores, kth):
            chosen = np.flatnonzero(row >= cut) if np.isfinite(cut) else np.flatnonzero(np.isfinite(row))
            ranked.append(best_first((self.ids[j], row[j]) for j in chosen)[:k])
        return ranked


def principal_basis(matrix: np.ndarray, rank: int) -> np.ndarray:
    """An orthonormal (dimensions x rank) basis of the rows' `rank` main directions (uncentred): a
    randomized range finder with one power iteration, then the exact principal directions within that
    range (Halko, Martinsson & Tropp 2011). Seeded: the same rows give the same basis."""
    matrix = matrix[:: max(1, len(matrix) // SCREEN_SAMPLE)]  # a sample is enough to find the main directions
    probe = np.random.default_rng(0).standard_normal((matrix.shape[1], rank + SCREEN_OVERSAMPLE), dtype=np.float32)
    span = np.linalg.qr(matrix.T @ (matrix @ probe))[0]
    span = np.linalg.qr(matrix.T @ (matrix @ span))[0]
    reduced = matrix @ span
    _, directions = np.linalg.eigh(reduced.T @ reduced)  # ascending
    return np.ascontiguousarray((span @ directions[:, ::-1][:, :rank]).astype(np.float32))


class ScreenedNeighbours(ExactNeighbours):
    """Exact cosine neighbours that score only the items that might be among them: each item's score
    is bounded from its projection on the items' main directions (`rank` floats) plus what the
    projection leaves out of it and of the query (q.x <= q'.x' + |q - q'| |x - x'|); the items of
    the highest bounds are scored exactly, then every item whose bound reaches the k-th best of those.

    For a live catalog's delta of thousands of vectors searched a query at a time: the whole float32
    matrix would come from memory on each query (a memory-bound scan costing about as much as the
    Annoy lookup beside it); the projection and the rows scored are a fraction of it, the more so in
    a merged search, where only items whose bound reaches the bulk's k-th best are scored.
    The answer is ExactNeighbours', up to float rounding; other distances score every item, as
    ExactNeighbours does."""

    def __init__(self, ids: list[str], matrix: np.ndarray, rank: int = SCREEN_RANK, basis: np.ndarray | None = None):
        """`basis`: orthonormal columns to project on (another index's, of similar items: the bounds
        hold for any; its own main directions, found from a sample, when None)."""
        super().__init__(ids, matrix)
        self.basis = principal_basis(self.matrix, rank) if basis is None else basis
        _, self.projected, self.left_out = self._rows_of(self.matrix)

    def _fresh(self, ids: list[str], matrix: np.ndarray | None) -> ExactNeighbours:
        if not ids or matrix is None:
            return ExactNeighbours([], None)
        return ScreenedNeighbours(ids, matrix, self.basis.shape[1], self.basis)

    def _per_row(self) -> list[np.ndarray]:
        return [self.matrix, self.projected, self.left_out]

    def _rows_of(self, matrix: np.ndarray) -> list[np.ndarray]:
        """Each unit vector, its projection on the basis, and |x - x'|: what the projection leaves out of it."""
        projected = np.ascontiguousarray(matrix @ self.basis)
        left = np.einsum("ij,ij->i", matrix, matrix) - np.einsum("ij,ij->i", projected, projected)
        return [matrix, projected, np.sqrt(np.maximum(left, 0)).astype(np.float32)]

    def _assembled(self, ids: list[str], rows: list[np.ndarray]) -> Self:
        made = super()._assembled(ids, rows)
        made.projected, made.left_out = rows[1], rows[2]
        return made

    def _kneighbors(self, queries, k, allowed, excludes, floors: np.ndarray | None = None) -> list[Ranked]:
        """With `floors`, only items that may reach the query's floor are scored, and only those that
        do are returned: in a merged search, a delta item below the bulk's k-th best cannot be among
        the k best."""
        keep, memo, found = self._mask(allowed), dict[int, np.ndarray](), list[Ranked]()
        for start in range(0, len(queries), BLOCK):
            block, excluded = queries[start : start + BLOCK], excludes[start : start + BLOCK]
            projected = block @ self.basis
            left = np.sqrt(np.maximum(1 - np.einsum("ij,ij->i", projected, projected), 0))  # unit queries
            bounds = projected @ self.projected.T
            bounds += left[:, None] * self.left_out
            self._filter(bounds, keep, excluded, memo)
            filtered = keep is not None or any(excluded)
            lows = np.full(len(block), -np.inf) if floors is None else floors[start : start + BLOCK] - SCREEN_SLACK
            if floors is not None:
                bounds[bounds < lows[:, None]] = -np.inf
                filtered = True
            found += [self._bounded(query, row, k, filtered, low) for query, row, low in zip(block, bounds, lows)]
        return found

    def _bounded(self, query: np.ndarray, bounds: np.ndarray, k: int, filtered: bool, low: float) -> Ranked:
        """One query's k best scoring `low` or more: the items of the highest bounds scored exactly, then
        every item whose bound reaches the k-th best of those (no other can beat it, nor tie with it)."""
        candidates = np.flatnonzero(np.isfinite(bounds)) if filtered else None
        total = len(bounds) if candidates is None else len(candidates)
        first = max(k * SCREEN_DEPTH, SCREEN_MIN)
        if total <= first:
            chosen = np.arange(total) if candidates is None else candidates
        elif candidates is None:
            chosen = np.argpartition(bounds, total - first)[total - first :]
        else:
            chosen = candidates[np.argpartition(bounds[candidates], total - first)[total - first :]]
        scores = self.matrix[chosen] @ query
        if k <= len(chosen) < total:
            reach = bounds >= np.partition(scores, len(scores) - k)[len(scores) - k] - SCREEN_SLACK
            reach[chosen] = False
            more = np.flatnonzero(reach)
            if len(more):
                chosen, scores = np.concatenate([chosen, more]), np.concatenate([scores, self.matrix[more] @ query])
        if not len(chosen):
            return []
        depth = min(k, len(scores))
        best = (scores >= np.partition(scores, len(scores) - depth)[len(scores) - depth]) & (scores >= low)
        return best_first((self.ids[j], s) for j, s in zip(chosen[best], scores[best]))[:k]


class AnnoyNeighbours(NeighbourIndex):
    """Candidates from a memory-mapped Annoy index, widened until enough pass the filters."""

    def __init__(self, index: LoadedIndex, search_k: int | None = None, removed: Set[str] = frozenset()):
        self.index = index
        self.ids = index.ids
        self.search_k = search_k
        self.removed = removed  # ids whose entries in the index are out of date (changed or gone since)

    def vectors(self, ids: list[str]) -> np.ndarray:
        return unit(np.vstack([self.index.vector(self.index.position[i]) for i in ids]))

    def _kneighbors(self, queries, k, allowed, excludes) -> list[Ranked]:
        return [self._one(query, k, allowed, excluded) for query, excluded in zip(queries, excludes)]

    def _one(self, vector: np.ndarray, depth: int, allowed: Set[str] | None, exclude: Collection[str]) -> Ranked:
        """Candidates passing the filters, asking for more until `depth` pass (or all are seen).

        A few excluded items (the query itself) are simply asked for in addition. Filters, or a
        large exclusion (the query's brand), passing a fraction f of the items make the first
        try ask for depth / f x 2 neighbours; the node budget stays that of an unfiltered search
        of `depth` items, or one node per neighbour asked for per tree when that is more.
        """
        index, total, removed = self.index, len(self.ids), self.removed
        few = len(exclude) <= depth
        passing = (total if allowed is None else len(allowed)) - (0 if few else len(exclude)) - len(removed)
        extra = len(exclude) if few else 0
        n = depth + extra if passing >= total else int(depth * total / max(passing, 1) * 2) + extra
        budget = self.search_k or index.search_k(depth)
        while True:
            n = min(n, total)
            positions, sims = index.nearest(vector, n, max(budget, n * index.info.trees))
            found = [
                (self.ids[p], s)
                for p, s in zip(positions, sims)
                if self.ids[p] not in exclude
                and self.ids[p] not in removed
                and (allowed is None or self.ids[p] in allowed)
            ]
            if len(found) >= depth or n >= total:
                return best_first(found)[:depth]
            n *= 4


class MergedNeighbours(NeighbourIndex):
    """An Annoy index (its out-of-date entries removed) merged with an exact index of the delta."""

    def __init__(self, bulk: AnnoyNeighbours, delta: ExactNeighbours):
        self.bulk, self.delta = bulk, delta

    @cached_property
    def ids(self) -> list[str]:  # type: ignore[override]  # an attribute made on first read, not read-only
        """Every id it holds, made when first asked for (a search does not: one made per request)."""
        return [*self.bulk.ids, *self.delta.ids] if self.delta.ids else self.bulk.ids

    def _empty(self) -> bool:
        return not self.bulk.ids and not self.delta.ids

    def vectors(self, ids: list[str]) -> np.ndarray:
        return np.vstack([self.delta.vectors([i]) if i in self.delta.position else self.bulk.vectors([i]) for i in ids])

    def _kneighbors(self, queries, k, allowed, excludes) -> list[Ranked]:
        found = self.bulk._kneighbors(queries, k, allowed, excludes)
        if not self.delta.ids:
            return found
        floors = np.array([old[k - 1][1] if len(old) >= k else -np.inf for old in found], np.float32)
        changed = self.delta._kneighbors(queries, k, allowed, excludes, floors)
        return [best_first([*old, *new])[:k] if new else old for old, new in zip(found, changed)]
