"""A live catalog's index: the Annoy bulk, plus what changed since it was built, plus compaction.

Annoy cannot add items to a built index. A method's Annoy index (core/search/index.py) is built at a
vector generation G; every item whose vector changed at G or later (stored, replaced, deleted, gone
or back: the `vector_changes` table, kept by triggers) is the *delta*. A search asks the Annoy index
with the delta's ids removed and an exact index of the delta's live vectors, and merges the two
(core/search/neighbours.py: `MergedNeighbours`), so a synced item is found at once, without a rebuild.
A delta of SCREEN_FROM vectors or more (of more than 2 x SCREEN_RANK dimensions) is searched through
a projection on its own main directions that bounds each item's score, only the items that can reach
the k-th best scored in full (`ScreenedNeighbours`: the same answer): scanning thousands of whole
vectors on each query would cost as much as the Annoy lookup itself.

When the delta passes a share of the method's vectors (`LOOKALIKE_COMPACT_SHARE`, default 5%), a
process that may write the index rebuilds it (compacts) in a background thread: the old build and
its delta serve every search meanwhile, and the new build is verified and memory-mapped before it
replaces the old one in one step, so no reader ever sees a half-built index. `index --compact` and
`sync` compact in the foreground.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from core.catalog.db import Catalog, open_catalog
from core.catalog.vectors import changed_since, vectors_of
from core.search import caches
from core.search.index import COMPACTING, IndexInfo, LoadedIndex, build_index, hold, open_built
from core.search.neighbours import SCREEN_RANK, ExactNeighbours, ScreenedNeighbours

log = logging.getLogger(__name__)

SCREEN_FROM = 1_000  # a delta of this many vectors finds its candidates in a projection (ScreenedNeighbours)


@dataclass(frozen=True)
class Delta:
    """What changed since a build: the ids whose entries in it are out of date, and the live vectors
    of those of them that have one, as an exact (or screened) index."""

    changed: frozenset[str]
    exact: ExactNeighbours


def load_delta(
    db: Catalog, method: str, version: str | None, loaded: LoadedIndex, since: tuple[int, Delta] | None = None
) -> Delta:
    """The delta of a loaded build (vectors of `version` only). `since`: (generation, the delta of this
    build and version loaded at that generation): only what changed since then is read, the rest taken
    from it (a sync's batches: its projection kept too), instead of reading every changed vector again."""
    if since is None:
        changed = changed_since(db, method, loaded.info.generation)
        ids, matrix = vectors_of(db, method, changed, version) if changed else ([], None)
        return _indexed(frozenset(changed), ids, matrix, None)
    generation, old = since
    fresh = set(changed_since(db, method, generation))  # changed at that generation or later: a superset
    new_ids, new_matrix = vectors_of(db, method, fresh, version) if fresh else ([], None)
    exact = old.exact.updated(fresh, new_ids, new_matrix)  # the rows kept (and their projection) as they are
    if len(exact.ids) >= SCREEN_FROM and not isinstance(exact, ScreenedNeighbours):
        return _indexed(old.changed | fresh, exact.ids, exact.matrix, None)
    return Delta(old.changed | fresh, exact)


def _indexed(changed: frozenset[str], ids: list[str], matrix: np.ndarray | None, basis: np.ndarray | None) -> Delta:
    if not ids or matrix is None:
        return Delta(changed, ExactNeighbours([], None))
    if len(ids) >= SCREEN_FROM and matrix.shape[1] > 2 * SCREEN_RANK:
        return Delta(changed, ScreenedNeighbours(ids, matrix, SCREEN_RANK, basis))
    return Delta(changed, ExactNeighbours(ids, matrix))


def compact(
    db: Catalog, method: str, metric: str, version: str | None, trees: int | None = None, progress: bool = False
) -> IndexInfo:
    """Rebuild a method's index from its vectors now; the new build serves this process's next searches."""
    key = str(db.index_dir / f"{method}.ann")
    with caches.LOCK:
        COMPACTING.add(key)
    try:
        info = build_index(db, method, metric, trees, progress, version)
        hold(db, method, open_built(db, method, info))
        return info
    finally:
        with caches.LOCK:
            COMPACTING.discard(key)


def compact_in_background(
    db: Catalog, method: str, metric: str, version: str | None, trees: int | None = None
) -> threading.Thread | None:
    """Start compacting a method's index (with `trees`) in a thread of its own, with its own catalog
    connection (None when one is already running for it)."""
    key, path = str(db.index_dir / f"{method}.ann"), db.path
    with caches.LOCK:
        if key in COMPACTING:
            return None
        COMPACTING.add(key)

    def run() -> None:
        try:  # build_index gives way to searches itself (core/priority.py)
            own = open_catalog(path, create=False, migrate=False)
            info = build_index(own, method, metric, trees, False, version)
            hold(own, method, open_built(own, method, info))
            log.info("compacted %s index: %d items", method, info.items)
        except Exception:  # a background thread has no one to tell but the log; the old build keeps serving
            log.warning("compacting the %s index failed", method, exc_info=True)
        finally:
            with caches.LOCK:
                COMPACTING.discard(key)

    thread = threading.Thread(target=run, name=f"compact-{method}", daemon=True)
    thread.start()
    return thread
