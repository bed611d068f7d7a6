"""Reading the catalog (core/catalog/items.py): one item's details, the catalog's counts, browsing."""

from __future__ import annotations

import json

import numpy as np

from core.catalog.items import (
    BrowseRow,
    CatalogStats,
    ItemCard,
    ItemPhoto,
    browse,
    item_cards,
    item_detail,
    missing_photos,
    stats,
)
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
    with demo_catalog.conn:
        demo_catalog.conn.execute("UPDATE items SET title = '100% cotton_tee' WHERE id = '10129'")
    assert browse(demo_catalog, text="%")[1] == 1
    assert browse(demo_catalog, text="_")[1] == 1
    assert browse(demo_catalog, text="n_t")[1] == 1
    assert browse(demo_catalog, text="0%")[1] == 1 and browse(demo_catalog, text="\\")[1] == 0


def test_browse_gives_typed_rows_a_page_at_a_time_with_the_total(demo_catalog):
    with demo_catalog.conn:
        demo_catalog.conn.execute("UPDATE items SET stock = 3, gone_at = '2026-01-02T03:04:05Z' WHERE id = '10129'")
    ids = [i for (i,) in demo_catalog.execute("SELECT id FROM items ORDER BY id")]
    rows, total = browse(demo_catalog, offset=5, limit=4)
    assert total == len(ids) == 300 and [r.item_id for r in rows] == ids[5:9]
    [row], found = browse(demo_catalog, text="10129")
    title, path = demo_catalog.execute(
        "SELECT title, path FROM items JOIN images ON item_id = id WHERE id = '10129'"
    ).fetchone()
    assert found == 1 and isinstance(row, BrowseRow)
    assert (row.item_id, row.title, row.stock, row.gone_at, row.image_path) == (
        "10129",
        title,
        3,
        "2026-01-02T03:04:05Z",
        path,
    )


def test_item_cards_give_each_known_items_card_and_say_when_its_photo_went_missing(demo_catalog, tmp_path):
    fields = "id, title, brand, category, colour, gender, price, currency"
    item_id, *shown = demo_catalog.execute(f"SELECT {fields} FROM items ORDER BY id LIMIT 1").fetchone()
    path = demo_catalog.execute("SELECT path FROM images WHERE item_id = ?", [item_id]).fetchone()[0]
    assert item_cards(demo_catalog, [item_id, "no such item"]) == {
        item_id: ItemCard(item_id, *shown, image_path=path, image_url=None, photo_missing=False)
    }
    assert missing_photos(demo_catalog) == []
    moved = str(tmp_path / "moved" / "photo.jpg")  # the file was moved after import: the path is kept
    with demo_catalog.conn:
        demo_catalog.conn.execute(
            "UPDATE images SET path = ?, url = 'https://shop.example/a.jpg' WHERE item_id = ?", [moved, item_id]
        )
    cards = item_cards(demo_catalog)
    assert len(cards) == 300 and cards[item_id].title == shown[0]
    assert (cards[item_id].image_path, cards[item_id].image_url, cards[item_id].photo_missing) == (
        moved,
        "https://shop.example/a.jpg",
        True,
    )
    assert missing_photos(demo_catalog) == [item_id]
