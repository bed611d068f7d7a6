"""Reading the catalog (core/catalog/items.py): one item's details, the catalog's counts, browsing."""

from __future__ import annotations

import json

import numpy as np

from core.catalog.items import CatalogStats, ItemPhoto, item_detail, stats
from core.catalog.vectors import store


def test_item_detail_gives_the_items_fields_photos_and_methods(demo_catalog):
    item_id, title, attributes = demo_catalog.execute(
        "SELECT id, title, attributes FROM items ORDER BY id LIMIT 1"
    ).fetchone()
    path = demo_catalog.execute("SELECT path FROM images WHERE item_id = ?", [item_id]).fetchone()[0]
    store(demo_catalog, "color_hist", "1", [(item_id, np.ones(4, np.float32), "h")])
    demo_catalog.execute(
        "INSERT INTO images (item_id, role, path, status, reason) VALUES (?, 'model', NULL, 'missing', 'no file')",
        [item_id],
    )
    item = item_detail(demo_catalog, item_id)
    assert (item.id, item.title, item.source, item.gone_at) == (item_id, title, "csv", None)
    assert item.attributes == json.loads(attributes) and item.attributes
    assert item.images[0] == ItemPhoto("primary", path, None, 224, 224, "ok", None)
    assert [p.status for p in item.images] == ["ok", "missing"] and item.image_path == path
    assert item.methods == ["color_hist"]
    assert item_detail(demo_catalog, "no such item") is None


def test_stats_counts_items_photos_and_vectors(demo_catalog):
    store(demo_catalog, "color_hist", "1", [("10129", np.ones(4, np.float32), "h")])
    demo_catalog.execute("UPDATE images SET status = 'unreadable' WHERE item_id = '10129'")
    assert stats(demo_catalog) == CatalogStats(300, 0, 299, 1, 0, 1, {"color_hist": 1})


def test_browse_escapes_like_wildcards(demo_catalog):
    from core.catalog.items import browse

    with demo_catalog.conn:
        demo_catalog.conn.execute("UPDATE items SET title = '100% cotton_tee' WHERE id = '10129'")
    assert browse(demo_catalog, text="%")[1] == 1
    assert browse(demo_catalog, text="_")[1] == 1
    assert browse(demo_catalog, text="n_t")[1] == 1
    assert browse(demo_catalog, text="0%")[1] == 1 and browse(demo_catalog, text="\\")[1] == 0
