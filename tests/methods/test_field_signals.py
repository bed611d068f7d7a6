"""Catalog-field signals of learnt methods: same brand, same gender, price ratio."""

from __future__ import annotations

import math

import numpy as np

from core.catalog.vectors import load_matrix, store
from core.curation import tuning
from core.engines.embed import embed_catalog
from core.methods.field_signals import field_parts, vocabularies
from core.methods.heads import current_head, head_vectors

BASES = ["efficientnet_lite0", "color_hist"]
WEIGHTS_ONLY = tuning.TuneOptions(head="never")


def test_field_blocks_match_same_values_and_near_prices():
    values = {
        "same_brand": ["Gucci", "Gucci", "Prada", "Unknown", None],
        "same_gender": ["women", None, None, None, None],  # one item in five: too few to count
        "price_ratio": [100.0, 100_000.0, 1000.0, None, float("nan")],
    }
    known = vocabularies(values, np.arange(3))  # the first three are the training items
    assert known == {"same_brand": ["Gucci", "Prada"], "price_ratio": []}
    parts = field_parts(values, known)
    brand, price = parts["same_brand"], parts["price_ratio"]
    assert brand[0] @ brand[1] == 1 and brand[0] @ brand[2] == 0
    assert not brand[3].any() and not brand[4].any()  # a value never seen, or none: no match
    assert math.isclose(price[0] @ price[1], -1, abs_tol=1e-6)  # 1,000 times the price
    assert math.isclose(price[0] @ price[2], math.cos(math.pi / 3), abs_tol=1e-6)  # 10 times: a third of the way
    assert not price[3].any() and not price[4].any()


def brand_catalog(db, n: int = 300, seed: int = 0) -> None:
    """Five categories, each sold by its own two brands of ten; the image base carries the category
    faintly, the colour base nothing; prices are random; no gender."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 5, n)
    brands = 2 * kinds + rng.integers(0, 2, n)
    rows = [
        {
            "id": f"b{i:04d}",
            "source": "test",
            "category": f"type{kinds[i]}",
            "brand": f"brand{brands[i]}",
            "price": float(rng.uniform(20, 2000)),
        }
        for i in range(n)
    ]
    db["items"].insert_all(rows)
    db["images"].insert_all({"item_id": r["id"], "role": "primary", "sha256": "h", "status": "ok"} for r in rows)
    image = 0.3 * rng.normal(size=(5, 24))[kinds] + rng.normal(size=(n, 24))
    store(db, BASES[0], "1", ((r["id"], v, "h") for r, v in zip(rows, image)))
    store(db, BASES[1], "1", ((r["id"], v, "h") for r, v in zip(rows, rng.normal(size=(n, 12)))))


def test_a_learnt_method_weighs_the_catalog_fields_it_has(catalog):
    brand_catalog(catalog)
    result = tuning.tune(catalog, "by_brand", BASES, ["category"], options=WEIGHTS_ONLY, progress=False)
    item = result.signal_weights.item
    assert "same_gender" not in item  # the catalog has no gender
    assert item["same_brand"] > 0.2 and item["same_brand"] > item.get("price_ratio", 0)
    assert set(result.signal_weights.photo) == {"efficientnet_lite0"}  # a photo has no fields
    plain = tuning.TuneOptions(head="never", catalog_fields=False)
    without = tuning.tune(catalog, "images_only", BASES, ["category"], options=plain, progress=False)
    assert "same_brand" not in without.signal_weights.item
    assert result.metrics["category"].tuned_held_out >= without.metrics["category"].tuned_held_out + 0.1
    assert current_head(catalog, "by_brand").fields["same_brand"][0].startswith("brand")
    embed_catalog(catalog, "by_brand", progress=False)  # item vectors from stored bases and the items' fields
    ids, matrix, _ = head_vectors(catalog, "by_brand")
    stored_ids, stored = load_matrix(catalog, "by_brand")
    assert stored_ids == ids and np.allclose(stored, matrix, atol=1e-5)
