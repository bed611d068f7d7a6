"""Tuned (learnt) methods as methods: a spec for each one saved in a catalog, and the extractor applying it.

A tuned method (learnt by core/curation/tuning.py, stored and applied by core/methods/heads.py) is
derived from its bases' vectors: the catalog's vectors are computed from the stored base vectors
(image and text; no photo decoded, no text encoded), an uploaded photo's by running the image bases
and applying the photo weights. Its version names the saved version, a digest of the head, the
weights and its bases' versions, so re-tuning makes its vectors and index stale the usual way.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from core.catalog.db import Catalog
from core.catalog.vectors import vectors_of
from core.methods import field_signals
from core.methods.base import DerivedExtractor
from core.methods.heads import Head, latest_rows
from core.methods.registry import get_spec, register_catalog_specs
from core.methods.spec import MethodSpec
from core.methods.specs import parts_available


def spec_of(row: dict) -> MethodSpec:
    """The spec of a saved head (a `tuned_methods` row)."""
    head = Head.from_row(row)
    bases = tuple(head.bases)
    digest = hashlib.sha1(row["head"])
    if row["base_weights"].startswith("{"):  # signal weights (rows from before them hold a list)
        digest.update(row["base_weights"].encode("utf-8"))
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
        description=f"Learnt over {' + '.join(bases)}, from {learnt} (version {row['version']})",
        weights="learnt on this catalog",
        factory="core.methods.tuned:TunedExtractor",
        availability=parts_available(row["name"], tuple(head.image_bases)),
        parts=tuple(head.image_bases),
        runs_model=False,
        training={**json.loads(row["record"]), "created_at": row["created_at"]},
    )


def saved_version(vector_version: str) -> int | None:
    """The saved version (1, 2, ...) a tuned method's vector version ('tuned-2-<digest>') was made by;
    None for any other method's."""
    kind, _, rest = vector_version.partition("-")
    number = rest.partition("-")[0]
    return int(number) if kind == "tuned" and number.isdigit() else None


@register_catalog_specs
def tuned_specs(catalog: Catalog, name: str | None = None) -> list[MethodSpec]:
    """The specs of the catalog's tuned methods (or of just `name`), at their current versions."""
    return [spec_of(row) for row in latest_rows(catalog, name)]


def _saved_rows(catalog: Catalog, name: str) -> list[dict]:
    """Every saved version's row of a tuned method, newest first."""
    return list(catalog.query("SELECT * FROM tuned_methods WHERE name = ? ORDER BY version DESC", [name]))


def spec_at(catalog: Catalog, name: str, version: str) -> MethodSpec | None:
    """The spec of the saved version of tuned method `name` whose vectors are of `version` (None when
    none is): a re-tuned method's previous head, still served until the new one is embedded."""
    return next((spec for row in _saved_rows(catalog, name) if (spec := spec_of(row)).version == version), None)


class TunedExtractor(DerivedExtractor):
    """The current version of a learnt method applied to its bases' vectors.

    It never embeds its bases for the catalog (`embeds_parts`): their stored vectors are used
    (image bases by `spec.parts`, text bases by `item_inputs`), and items lacking an image base's
    vector are reported, so embedding it decodes no photo. A photo runs the image bases only.
    """

    embeds_parts = False

    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        super().__init__(spec, catalog)
        rows = latest_rows(catalog, spec.name) if catalog is not None else []
        if not rows or catalog is None:
            raise ValueError(f"no tuned method {spec.name!r} in this catalog")
        if spec_of(rows[0]).version != spec.version:  # an earlier saved version, still served
            rows = [r for r in _saved_rows(catalog, spec.name) if spec_of(r).version == spec.version] or rows
        self.head = Head.from_row(rows[0])
        self.spec = spec_of(rows[0])  # the version actually loaded

    def item_inputs(self, item_ids: list[str]) -> dict[str, np.ndarray]:
        """The text bases' stored vectors of these items (zeros for an item without one), and their field signals."""
        if self.catalog is None:  # never: a tuned method is built from its catalog
            raise ValueError(f"{self.spec.name} reads its catalog's vectors: build it with its catalog")
        inputs = field_signals.catalog_parts(self.catalog, item_ids, self.head.fields)
        for base, kind, dim in zip(self.head.bases, self.head.kinds, self.head.dims):
            if kind != "image":
                found, matrix = vectors_of(self.catalog, base, item_ids)
                rows = {i: n for n, i in enumerate(found)}
                inputs[base] = np.stack([matrix[rows[i]] if i in rows else np.zeros(dim, np.float32) for i in item_ids])
        return inputs

    def combine(self, part_vectors: dict[str, np.ndarray]) -> np.ndarray:
        return self.head.vectors(part_vectors)

    def combine_photo(self, part_vectors: dict[str, np.ndarray]) -> np.ndarray:
        return self.head.vectors(part_vectors, photo=True)
