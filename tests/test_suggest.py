"""`labels suggest`: the queries whose judgements teach most (the most typical items of look-alike groups)."""

from __future__ import annotations

import json
import shutil

import numpy as np

from core.catalog.db import open_catalog
from core.catalog.vectors import store
from core.curation.labels import Query, add_label
from core.curation.suggest import suggest_queries
from core.methods.distances import unit

from helpers import run_cli


def blobs(catalog, sizes=(40, 25, 10, 5)) -> tuple[list[list[str]], dict[str, np.ndarray]]:
    """Items in look-alike groups of the given sizes: the ids per group, and each item's unit vector."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(len(sizes), 8)) * 10
    groups = [[f"g{g}i{n:02d}" for n in range(size)] for g, size in enumerate(sizes)]
    shape = np.vstack([centres[g] + rng.normal(size=(size, 8)) for g, size in enumerate(sizes)])
    ids = sum(groups, [])
    catalog["items"].insert_all([{"id": i, "source": "test"} for i in ids])
    store(catalog, "efficientnet_lite0", "1", ((i, v, "h") for i, v in zip(ids, shape)))
    return groups, dict(zip(ids, unit(shape)))


def test_suggestions_stand_for_the_biggest_unjudged_look_alike_groups(catalog):
    groups, vectors = blobs(catalog)
    found = suggest_queries(catalog, "efficientnet_lite0", 4)
    assert [s.group_size for s in found] == [40, 25, 10, 5]  # one per group, biggest first
    for s, group in zip(found, groups):  # its most typical member: nearest the group's mean
        mean = np.mean([vectors[i] for i in group], axis=0)
        assert s.item_id == min(group, key=lambda i: np.linalg.norm(vectors[i] - mean))
    add_label(catalog, Query.item(groups[0][5]), groups[1][0], "efficientnet_lite0", 1, True, "ann")
    after = suggest_queries(catalog, "efficientnet_lite0", 3)
    assert [s.item_id[:2] for s in after] == ["g1", "g2", "g3"]  # the judged query's group is covered
    pooled = suggest_queries(catalog, "efficientnet_lite0", 3, pool=30)  # a large catalog's way: a sample
    assert len(pooled) == 3 and groups[0][5] not in {s.item_id for s in pooled}
    assert pooled == suggest_queries(catalog, "efficientnet_lite0", 3, pool=30)  # seeded: the same sample


def test_labels_suggest_on_the_demo_slice(embedded_demo_path, tmp_path):
    db = tmp_path / "demo.db"
    shutil.copy(embedded_demo_path, db)
    done = run_cli("labels", "suggest", "-n", "4", "--method", "efficientnet_lite0", "--json", "--db", str(db))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    catalog = open_catalog(db)
    known = {i for (i,) in catalog.execute("SELECT id FROM items")}
    assert len(found) == 4 and {s["item_id"] for s in found} <= known
    assert all(1 <= s["group_size"] <= len(known) for s in found)
    text = run_cli("labels", "suggest", "-n", "2", "--db", str(db))
    assert text.returncode == 0 and found[0]["item_id"] in text.stdout
