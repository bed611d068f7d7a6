"""Catalog-field signals of learnt methods: same brand, same gender, price ratio (NumPy only).

Where a catalog has them, a learnt method weighs simple matches between two listings' own fields
beside its image and text signals (core/curation/tuning.py learns how much each counts). Each is a
block of the method's vector whose cosine between two items is the match:

- `same_brand`, `same_gender`: one-hot over the values seen when the method learnt (a value it
  never saw, or none: a zero block, so no match);
- `price_ratio`: (cos θ, sin θ) with θ = π · ln(price) / ln(1000), so the cosine of two items is
  cos(π · ln(ratio) / ln(1000)): 1 for equal prices, 0 at a ratio of about 32, -1 at 1,000.

An uploaded photo has no fields: its blocks are zero.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np

from core.catalog.db import Catalog

FIELDS = {"same_brand": "brand", "same_gender": "gender", "price_ratio": "price"}  # signal -> items column
SPAN = 1000.0  # the price ratio whose angle is π
MOST_VALUES = 2000  # a one-hot signal keeps at most this many values (the most frequent)
LEAST_SHARE = 0.1  # a field counts where at least this share of the training items have it


def field_values(db: Catalog, ids: list[str]) -> dict[str, list]:
    """Each signal's field value per item of `ids`, in that order (None: blank)."""
    found = {
        row[0]: row[1:]
        for row in db.execute(  # columns from a fixed set
            f"SELECT id, {', '.join(FIELDS.values())} FROM items WHERE id IN (SELECT value FROM json_each(?))",
            [json.dumps(ids)],
        )
    }
    blank = (None,) * len(FIELDS)
    return {signal: [found.get(i, blank)[n] for i in ids] for n, signal in enumerate(FIELDS)}


def _usable(value) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return value is not None and math.isfinite(value) and value > 0


def vocabularies(values: dict[str, list], rows: np.ndarray) -> dict[str, list[str]]:
    """The signals a catalog has among its training `rows` (filled for LEAST_SHARE of them, with two
    values at least): the one-hot ones' values, most frequent first; [] for the price ratio."""
    signals: dict[str, list[str]] = {}
    for signal, column in values.items():
        present = [column[r] for r in rows if _usable(column[r])]
        if len(present) < max(2, LEAST_SHARE * len(rows)) or len(set(present)) < 2:
            continue
        if signal == "price_ratio":
            signals[signal] = []
        else:
            signals[signal] = [str(v) for v, _ in Counter(str(v) for v in present).most_common(MOST_VALUES)]
    return signals


def field_parts(values: dict[str, list], vocabulary: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Each learnt field signal's unit vectors (zero rows: a blank or unseen value)."""
    parts = {}
    for signal, known in vocabulary.items():
        column = values[signal]
        if signal == "price_ratio":
            part = np.zeros((len(column), 2), np.float32)
            priced = [n for n, v in enumerate(column) if _usable(v)]
            if priced:
                angles = math.pi * np.log([float(column[n]) for n in priced]) / math.log(SPAN)
                part[priced] = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        else:
            where = {v: n for n, v in enumerate(known)}
            part = np.zeros((len(column), len(known)), np.float32)
            hits = [(n, where[str(v)]) for n, v in enumerate(column) if _usable(v) and str(v) in where]
            if hits:
                part[tuple(np.array(hits).T)] = 1.0
        parts[signal] = part
    return parts


def catalog_parts(db: Catalog, ids: list[str], vocabulary: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """The field signals' unit vectors of these catalog items (nothing read when a method has none)."""
    return field_parts(field_values(db, ids), vocabulary) if vocabulary else {}


def size(signal: str, vocabulary: dict[str, list[str]]) -> int:
    """A field signal's block width."""
    return 2 if signal == "price_ratio" else len(vocabulary[signal])
