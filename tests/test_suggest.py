"""`labels suggest`: the queries whose judgements teach most (where the signals disagree)."""

from __future__ import annotations

import json
import shutil

import numpy as np

from core.catalog.db import open_catalog
from core.catalog.vectors import store
from core.curation.labels import Query, add_label
from core.curation.suggest import disagreement, suggest_queries

from helpers import run_cli


def test_disagreement_is_zero_when_signals_agree_and_grows_when_they_do_not():
    rng = np.random.default_rng(0)
    one = rng.normal(size=(60, 8))
    assert np.allclose(disagreement([one, one * 3]), 0, atol=1e-5)
    other = rng.normal(size=(60, 8))
    assert disagreement([one, other]).mean() > 0.5


def test_suggestions_are_the_items_whose_signals_disagree_unjudged_and_distinct(catalog):
    rng = np.random.default_rng(1)
    shape = rng.normal(size=(80, 8))
    hue = shape.copy()
    hue[:10] = rng.normal(size=(10, 8))  # only for the first ten items does colour tell another story
    ids = [f"i{n:03d}" for n in range(80)]
    catalog["items"].insert_all([{"id": i, "source": "test"} for i in ids])
    store(catalog, "efficientnet_lite0", "1", ((i, v, "h") for i, v in zip(ids, shape)))
    store(catalog, "color_hist", "1", ((i, v, "h") for i, v in zip(ids, hue)))
    found = suggest_queries(catalog, "efficientnet_lite0", 5)
    assert len({s.item_id for s in found}) == 5 and {s.item_id for s in found} <= set(ids[:10])
    assert [s.disagreement for s in found] == sorted((s.disagreement for s in found), reverse=True)
    add_label(catalog, Query.item(found[0].item_id), ids[40], "efficientnet_lite0", 1, True, "ann")
    assert found[0].item_id not in {s.item_id for s in suggest_queries(catalog, "efficientnet_lite0", 5)}
    pooled = suggest_queries(catalog, "efficientnet_lite0", 5, pool=40)  # a large catalog's way: a sample
    assert len(pooled) == 5 and found[0].item_id not in {s.item_id for s in pooled}
    assert pooled == suggest_queries(catalog, "efficientnet_lite0", 5, pool=40)  # seeded: the same sample


def test_labels_suggest_on_the_demo_slice(embedded_demo_path, tmp_path):
    db = tmp_path / "demo.db"
    shutil.copy(embedded_demo_path, db)
    done = run_cli("labels", "suggest", "-n", "4", "--method", "efficientnet_lite0", "--json", "--db", str(db))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    catalog = open_catalog(db)
    known = {i for (i,) in catalog.execute("SELECT id FROM items")}
    assert len(found) == 4 and {s["item_id"] for s in found} <= known
    assert all(0 < s["disagreement"] <= 2 for s in found)
    text = run_cli("labels", "suggest", "-n", "2", "--db", str(db))
    assert text.returncode == 0 and found[0]["item_id"] in text.stdout
