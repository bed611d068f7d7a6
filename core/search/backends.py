"""Neighbour backends by registered name, and which one serves a search.

A backend is registered with a name, a test of whether it serves a search (how many vectors the
method has, which items the filters allow) and a factory that makes its `NeighbourIndex`
(core/search/neighbours.py) from a method's space. A space asks the backends in registration order
and uses the first that serves, unless it was opened with a backend's name. Built in:

| name | serves | answers with |
|---|---|---|
| `exact` | up to EXACT_LIMIT vectors | every vector in a NumPy matrix, cached per process |
| `exact-subset` | filters passing up to SUBSET_EXACT_LIMIT items | just those items' vectors, read for this search |
| `annoy` | anything | the method's memory-mapped Annoy index (core/search/index.py), merged with an exact index of what changed since it was built (core/search/delta.py) |

A new backend: a `NeighbourIndex` subclass and one `register_backend` call, placed before the
backends it should be preferred to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from core.search.neighbours import ExactNeighbours, NeighbourIndex

EXACT_LIMIT = 20_000  # catalogs up to this many vectors are searched exactly
SUBSET_EXACT_LIMIT = 2_000  # on larger ones, filters passing up to this many items are searched exactly


class Vectors(Protocol):
    """What a backend may ask of a method's space (core/search/space.py)."""

    def exact_index(self) -> ExactNeighbours: ...

    def vectors_of(self, item_ids: Iterable[str]) -> tuple[list[str], np.ndarray]: ...

    def annoy_neighbours(self, search_k: int | None) -> NeighbourIndex: ...


Factory = Callable[[Vectors, "Set[str] | None", "int | None"], NeighbourIndex]


@dataclass(frozen=True)
class Backend:
    name: str
    serves: Callable[[int, Set[str] | None], bool]  # (the method's vector count, allowed items or None)
    make: Factory  # (space, allowed items or None, Annoy search_k or None) -> NeighbourIndex


BACKENDS: dict[str, Backend] = {}  # in the order they are asked


def register_backend(name: str, serves: Callable[[int, Set[str] | None], bool]) -> Callable[[Factory], Factory]:
    """Register `make` under `name` (a decorator)."""

    def register(make: Factory) -> Factory:
        BACKENDS[name] = Backend(name, serves, make)
        return make

    return register


def backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown neighbour backend {name!r}; known: {', '.join(BACKENDS)}") from None


def choose(total: int, allowed: Set[str] | None) -> Backend:
    """The first registered backend that serves a search of `total` vectors among `allowed` items."""
    return next(b for b in BACKENDS.values() if b.serves(total, allowed))


@register_backend("exact", lambda total, allowed: total <= EXACT_LIMIT)
def _exact(space: Vectors, allowed: Set[str] | None, search_k: int | None) -> NeighbourIndex:
    return space.exact_index()


@register_backend("exact-subset", lambda total, allowed: allowed is not None and len(allowed) <= SUBSET_EXACT_LIMIT)
def _exact_subset(space: Vectors, allowed: Set[str] | None, search_k: int | None) -> NeighbourIndex:
    return ExactNeighbours(*space.vectors_of(allowed or ()))


@register_backend("annoy", lambda total, allowed: True)
def _annoy(space: Vectors, allowed: Set[str] | None, search_k: int | None) -> NeighbourIndex:
    return space.annoy_neighbours(search_k)
