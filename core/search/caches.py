"""What a process loads once and every session shares, kept in this one place (read through a
method's space, core/search/space.py).

| cache | key | holds | fresh while |
|---|---|---|---|
| `MATRICES` | (catalog file, method) | the method's unit vectors as an exact neighbour index | the vector generation is unchanged |
| `COUNTS` | (catalog file, method) | how many vectors the method has | the vector generation is unchanged |
| `SEARCHED` | (catalog file, method, its real version) | the one version of its vectors that searches read | the vector generation is unchanged |
| `VERSIONS` | (catalog file, method) | the method versions that made its vectors | the vector generation is unchanged |
| `DELTAS` | (catalog file, method) | what changed since its Annoy build, as an exact index (core/search/delta.py) | the vector generation and the build are unchanged (then brought up to date from the entry by what changed since its generation, for the same build and version) |
| `EXTRACTORS` | (catalog file, method, real version, device) | a loaded feature extractor (a model: what embeds, and reads query photos and texts; a derived method's photos run its parts' own) | it is among the `LOOKALIKE_MODEL_CACHE` (4) most recently used (a retrained or re-tuned method has a new version) |
| `INDICES` | (index file, build) | a memory-mapped Annoy index | no newer build of that file is loaded |
| `GONE` | (catalog file,) | the ids of the items that left the feed | the catalog's gone counter is unchanged (`gone_items`, core/search/space.py) |
| `FIELDS` | (catalog file,) | the fields that can group items (`grouping_fields`) | the items' count, newest row and last update are unchanged |

The vector generation is the catalog's per-method change counter (moved by triggers on every
insert, update and delete of a vector), so a cached entry is never served after its vectors changed.

Locks: `LOCK` guards the dictionaries and is held for a look-up or a store only, never while something
loads. A load holds its own key's lock (`key_lock`): the first requests for one method's model or matrix
wait for that one load, while every other method's requests go on (an index file's build holds its
file's lock the same way, core/search/index.py). A model dropped from `EXTRACTORS` is freed once no
search still uses it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from core.methods.base import Extractor

T = TypeVar("T")


class SnapshotDict(dict):
    """A dict that some threads change while others look through it: iterating it, or its items,
    goes through a copy made at once (no "dictionary changed size during iteration")."""

    def __iter__(self):
        return iter(list(super().__iter__()))

    def items(self):
        return list(super().items())


LOCK = threading.RLock()
MATRICES: dict[tuple[str, str], tuple[int, Any]] = {}
COUNTS: dict[tuple[str, str], tuple[int, int]] = {}
VERSIONS: dict[tuple[str, str], tuple[int, set[str]]] = {}
SEARCHED: dict[tuple[str, str, str], tuple[int, str]] = {}
DELTAS: dict[tuple[str, str], tuple[Any, Any]] = {}
EXTRACTORS: dict[tuple[str, str, str, str], Extractor] = {}  # oldest use first
INDICES: dict[tuple[str, str], Any] = SnapshotDict()  # index files load and build side by side
FIELDS: dict[tuple[str], tuple[Any, list[str]]] = {}
GONE: dict[tuple[str], tuple[int, frozenset[str]]] = {}
EVERY = (MATRICES, COUNTS, VERSIONS, SEARCHED, DELTAS, EXTRACTORS, INDICES, FIELDS, GONE)  # the table above
_KEY_LOCKS: dict[tuple[int, tuple], threading.RLock] = {}


def key_lock(cache: dict, key: tuple) -> threading.RLock:
    """The lock that loads of `key` into `cache` hold; loads of other keys never wait for it."""
    with LOCK:
        lock = _KEY_LOCKS.get((id(cache), key))
        if lock is None:
            lock = _KEY_LOCKS[(id(cache), key)] = threading.RLock()
        return lock


def current(cache: dict, key: tuple, generation: Any, load: Callable[[], T]) -> T:
    """The value cached under `key` if it was made at `generation`; else `load()`, cached with it
    (one load at a time per key: a request that waited for it gets what it loaded)."""
    cached = cache.get(key)
    if cached and cached[0] == generation:
        return cached[1]
    with key_lock(cache, key):
        cached = cache.get(key)
        if cached and cached[0] == generation:
            return cached[1]
        value = load()
        with LOCK:
            cache[key] = (generation, value)
        return value


def once(cache: dict, key: tuple, load: Callable[[], T], keep: int | None = None) -> T:
    """The value cached under `key`, loaded once (under that key's lock) the first time it is asked for.
    With `keep`, the cache holds the `keep` most recently used values: one more drops the oldest."""

    def cached() -> tuple[bool, Any]:
        with LOCK:
            if key not in cache:
                return False, None
            if keep is not None:
                cache[key] = cache.pop(key)  # now the most recently used
            return True, cache[key]

    found, value = cached()
    if found:
        return value
    with key_lock(cache, key):
        found, value = cached()
        if found:
            return value
        value = load()
        with LOCK:
            cache[key] = value
            while keep is not None and len(cache) > keep:
                del cache[next(iter(cache))]  # the least recently used
        return value


def forget(cache: dict, key: tuple) -> None:
    """Drop one entry (a model that turned out to be of another version than the one it was asked for)."""
    with LOCK:
        cache.pop(key, None)


def clear(*caches: dict) -> None:
    """Forget the given caches (every one when none is named): tests, or files replaced by hand."""
    with LOCK:
        for cache in caches or EVERY:
            cache.clear()
