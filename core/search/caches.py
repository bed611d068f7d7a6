"""What a process loads once and every session shares, kept in this one place (read through a
method's space, core/search/space.py).

| cache | key | holds | fresh while |
|---|---|---|---|
| `MATRICES` | (catalog file, method) | the method's unit vectors as an exact neighbour index | the vector generation is unchanged |
| `COUNTS` | (catalog file, method) | how many vectors the method has | the vector generation is unchanged |
| `SEARCHED` | (catalog file, method, its real version) | the one version of its vectors that searches read | the vector generation is unchanged |
| `VERSIONS` | (catalog file, method) | the method versions that made its vectors | the vector generation is unchanged |
| `DELTAS` | (catalog file, method) | what changed since its Annoy build, as an exact index (core/search/delta.py) | the vector generation and the build are unchanged |
| `EXTRACTORS` | (catalog file, method, real version, device) | a loaded feature extractor (a model) | the process lives (a retrained or re-tuned method has a new version) |
| `INDICES` | (index file, build) | a memory-mapped Annoy index | no newer build of that file is loaded |
| `FIELDS` | (catalog file,) | the fields that can group items (`grouping_fields`) | the items' count, newest row and last update are unchanged |

The vector generation is the catalog's per-method change counter (moved by triggers on every
insert, update and delete of a vector), so a cached entry is never served after its vectors changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

LOCK = threading.RLock()
MATRICES: dict[tuple[str, str], tuple[int, Any]] = {}
COUNTS: dict[tuple[str, str], tuple[int, int]] = {}
VERSIONS: dict[tuple[str, str], tuple[int, set[str]]] = {}
SEARCHED: dict[tuple[str, str, str], tuple[int, str]] = {}
DELTAS: dict[tuple[str, str], tuple[Any, Any]] = {}
EXTRACTORS: dict[tuple[str, str, str], Any] = {}
INDICES: dict[tuple[str, str], Any] = {}
FIELDS: dict[tuple[str], tuple[Any, list[str]]] = {}


def current(cache: dict, key: tuple, generation: Any, load: Callable[[], T]) -> T:
    """The value cached under `key` if it was made at `generation`; else `load()`, cached with it."""
    cached = cache.get(key)
    if cached and cached[0] == generation:
        return cached[1]
    value = load()
    with LOCK:
        cache[key] = (generation, value)
    return value


def once(cache: dict, key: tuple, load: Callable[[], T]) -> T:
    """The value cached under `key`, loaded (once, under the lock) the first time it is asked for."""
    with LOCK:
        if key not in cache:
            cache[key] = load()
        return cache[key]


def clear(*caches: dict) -> None:
    """Forget the given caches (every one when none is named): tests, or files replaced by hand."""
    with LOCK:
        for cache in caches or (MATRICES, COUNTS, VERSIONS, SEARCHED, DELTAS, EXTRACTORS, INDICES, FIELDS):
            cache.clear()
