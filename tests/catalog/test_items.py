"""Items (core/catalog/items.py): browsing matches the typed text literally."""

from __future__ import annotations


def test_browse_escapes_like_wildcards(demo_catalog):
    from core.catalog.items import browse

    with demo_catalog.conn:
        demo_catalog.conn.execute("UPDATE items SET title = '100% cotton_tee' WHERE id = '10129'")
    assert browse(demo_catalog, text="%")[1] == 1
    assert browse(demo_catalog, text="_")[1] == 1
    assert browse(demo_catalog, text="n_t")[1] == 1
    assert browse(demo_catalog, text="0%")[1] == 1 and browse(demo_catalog, text="\\")[1] == 0
