"""`labels suggest`: the queries whose judgements teach most (where the titles half-agree with the look-alikes)."""

from __future__ import annotations

import json
import shutil

import numpy as np

from core.catalog.db import open_catalog
from core.catalog.vectors import store
from core.curation.labels import Query, add_label
from core.curation.suggest import agreement, suggest_queries

from helpers import run_cli


def test_agreement_is_one_when_the_judge_sees_the_ranking_and_falls_with_noise():
    rng = np.random.default_rng(0)
    look = rng.normal(size=(60, 8))
    assert np.allclose(agreement(look, [look]), agreement(look, [look * 3]))
    noisy = agreement(look, [look + rng.normal(size=(60, 8)) * 5])
    assert noisy.mean() < agreement(look, [look]).mean() - 0.2


def test_suggestions_are_unsure_items_not_the_surest_nor_the_oddest(catalog):
    """80 items in 4 look-alike groups; their titles (minilm) agree with the group less and less, item by
    item: the suggestions come from the lower quartile of agreement, neither end, distinct and unjudged."""
    rng = np.random.default_rng(1)
    groups, n = rng.integers(0, 4, 80), 80
    shape = rng.normal(size=(4, 8))[groups] * 4 + rng.normal(size=(n, 8))
    noise = np.linspace(0, 6, n)  # item i's title drifts from its group's by noise[i]
    text = rng.normal(size=(4, 16))[groups] + noise[:, None] * rng.normal(size=(n, 16))
    ids = [f"i{r:03d}" for r in range(n)]
    catalog["items"].insert_all([{"id": i, "source": "test"} for i in ids])
    store(catalog, "efficientnet_lite0", "1", ((i, v, "h") for i, v in zip(ids, shape)))
    store(catalog, "minilm", "1", ((i, v, "t") for i, v in zip(ids, text)))
    found = suggest_queries(catalog, "efficientnet_lite0", 8)
    rows = [ids.index(s.item_id) for s in found]
    scores = agreement(shape, [text])
    assert len(set(rows)) == 8 and np.allclose([s.agreement for s in found], scores[rows], atol=1e-4)
    low, high = np.quantile(scores, [0.1, 0.45])  # about the lower quartile: not the surest, not the oddest
    assert all(low <= s.agreement <= high for s in found)
    assert noise[rows].mean() > noise.mean()  # unsure items: their titles drifted from their look-alikes'
    add_label(catalog, Query.item(found[0].item_id), ids[0], "efficientnet_lite0", 1, True, "ann")
    assert found[0].item_id not in {s.item_id for s in suggest_queries(catalog, "efficientnet_lite0", 8)}
    pooled = suggest_queries(catalog, "efficientnet_lite0", 4, pool=40)  # a large catalog's way: a sample
    assert len(pooled) == 4 and found[0].item_id not in {s.item_id for s in pooled}
    assert pooled == suggest_queries(catalog, "efficientnet_lite0", 4, pool=40)  # seeded: the same sample


def test_labels_suggest_on_the_demo_slice(embedded_demo_path, tmp_path):
    db = tmp_path / "demo.db"
    shutil.copy(embedded_demo_path, db)
    done = run_cli("labels", "suggest", "-n", "4", "--method", "efficientnet_lite0", "--json", "--db", str(db))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    catalog = open_catalog(db)
    known = {i for (i,) in catalog.execute("SELECT id FROM items")}
    assert len(found) == 4 and {s["item_id"] for s in found} <= known
    assert all(-1 <= s["agreement"] <= 1 for s in found)
    titles = dict(catalog.execute("SELECT id, title FROM items"))
    assert all(s["title"] == titles[s["item_id"]] for s in found)
    text = run_cli("labels", "suggest", "-n", "2", "--db", str(db))
    assert text.returncode == 0 and found[0]["item_id"] in text.stdout
    first = next(line for line in text.stdout.splitlines() if line.startswith(found[0]["item_id"]))
    assert first.endswith(titles[found[0]["item_id"]])  # the title beside each id
