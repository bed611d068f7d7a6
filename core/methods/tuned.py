"""Tuned methods as methods: a spec for each head saved in a catalog, and the extractor applying it.

A tuned method (core/curation/tuning.py) is derived from its bases' vectors: the catalog's tuned vectors
are computed from the stored base vectors (no photo decoded), an uploaded photo's by running the
bases and then the head. Its version names the head's saved version, a digest of the head and
its bases' versions, so re-tuning makes its vectors and index stale the usual way.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from core.catalog.db import Catalog
from core.methods.base import DerivedExtractor
from core.methods.registry import get_spec, register_catalog_specs
from core.methods.spec import MethodSpec
from core.methods.specs import parts_available


def spec_of(row: dict) -> MethodSpec:
    """The spec of a saved head (a `tuned_methods` row)."""
    bases = tuple(json.loads(row["bases"]))
    digest = hashlib.sha1(row["head"])
    digest.update("|".join(get_spec(base).version for base in bases).encode("utf-8"))
    targets = json.loads(row["targets"])
    learnt = " + ".join(
        [*(["targets " + ",".join(targets)] if targets else []), *(["labels"] if row["uses_labels"] else [])]
    )
    return MethodSpec(
        name=row["name"],
        version=f"tuned-{row['version']}-{digest.hexdigest()[:12]}",
        kind="image",
        dim=int(row["dim"]),
        metric="angular",
        family="tuned",
        description=f"Tuned head over {' + '.join(bases)}, learnt from {learnt} (version {row['version']})",
        weights="learnt on this catalog",
        factory="core.methods.tuned:TunedExtractor",
        availability=parts_available(row["name"], bases),
        parts=bases,
        runs_model=False,
        training={**json.loads(row["record"]), "created_at": row["created_at"]},
    )


@register_catalog_specs
def tuned_specs(catalog: Catalog, name: str | None = None) -> list[MethodSpec]:
    """The specs of the catalog's tuned methods (or of just `name`), at their current versions."""
    from core.curation.tuning import latest_rows

    return [spec_of(row) for row in latest_rows(catalog, name)]


class TunedExtractor(DerivedExtractor):
    """The current head of a tuned method applied to its bases' unit vectors.

    It never embeds its bases for the catalog (`embeds_parts`): their stored vectors are used,
    and items lacking them are reported, so embedding it decodes no photo.
    """

    embeds_parts = False

    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        from core.curation.tuning import Head, latest_rows

        super().__init__(spec, catalog)
        rows = latest_rows(catalog, spec.name) if catalog is not None else []
        if not rows:
            raise ValueError(f"no tuned method {spec.name!r} in this catalog")
        self.head = Head.from_row(rows[0])
        self.spec = spec_of(rows[0])  # the version of the head actually loaded

    def combine(self, part_vectors: dict[str, np.ndarray]) -> np.ndarray:
        from core.curation.tuning import base_input

        return self.head.project(base_input([part_vectors[b] for b in self.head.bases], self.head.weights))
