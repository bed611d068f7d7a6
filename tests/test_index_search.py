"""Annoy indices and search: freshness, exact/Annoy agreement, filters, fusion, photo and text queries."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SHARED, needs_shared
from core import index as index_mod
from core import search as search_mod
from core.filters import parse_filters
from core.images import MAX_UPLOAD_BYTES
from core.index import build_index, load_index, problem
from core.search import SearchError, search, search_many
from core.vectors import get_vector, store


def first_item(db) -> str:
    return db.execute("SELECT item_id FROM embeddings WHERE method = 'efficientnet_lite0' ORDER BY item_id").fetchone()[0]


def test_build_writes_manifest_and_files_atomically(embedded_demo):
    info = build_index(embedded_demo, "efficientnet_lite0", trees=10, progress=False)
    folder = index_mod.index_dir(embedded_demo)
    assert sorted(p.name for p in folder.iterdir()) == [
        "efficientnet_lite0.ann", "efficientnet_lite0.ids", "efficientnet_lite0.json"]
    manifest = json.loads((folder / "efficientnet_lite0.json").read_text())
    assert manifest["items"] == 300 and manifest["dim"] == 1280 and manifest["trees"] == 10
    assert manifest["metric"] == "angular" and manifest["versions"] == ["1"] and len(manifest["checksum"]) == 64
    assert info.ann_bytes == (folder / "efficientnet_lite0.ann").stat().st_size
    assert problem(embedded_demo, "efficientnet_lite0") is None


def test_stale_and_damaged_indices_are_rebuilt_not_served(embedded_demo):
    build_index(embedded_demo, "efficientnet_lite0", progress=False)
    item = first_item(embedded_demo)
    store(embedded_demo, "efficientnet_lite0", "1", [(item, -get_vector(embedded_demo, "efficientnet_lite0", item), "x")])
    assert problem(embedded_demo, "efficientnet_lite0") == "vectors changed since the index was built"
    loaded = load_index(embedded_demo, "efficientnet_lite0")
    assert problem(embedded_demo, "efficientnet_lite0") is None
    assert loaded.info.checksum != ""
    ann = index_mod.index_dir(embedded_demo) / "efficientnet_lite0.ann"
    ann.write_bytes(ann.read_bytes()[:1000])                   # truncated on disk
    assert problem(embedded_demo, "efficientnet_lite0") == "index file missing or damaged"
    with pytest.raises(index_mod.IndexUnavailable, match="python -m core index"):
        load_index(embedded_demo, "efficientnet_lite0", rebuild=False)
    assert load_index(embedded_demo, "efficientnet_lite0").annoy.get_n_items() == 300


def test_annoy_and_exact_search_agree(embedded_demo, monkeypatch):
    items = [r[0] for r in embedded_demo.execute(
        "SELECT item_id FROM embeddings WHERE method = 'efficientnet_lite0' ORDER BY item_id LIMIT 20")]
    exact = {i: search(embedded_demo, "efficientnet_lite0", item_id=i, k=10).results for i in items}
    build_index(embedded_demo, "efficientnet_lite0", progress=False)
    monkeypatch.setattr(search_mod, "EXACT_LIMIT", 0)
    overlap = []
    for i in items:
        approx = search(embedded_demo, "efficientnet_lite0", item_id=i, k=10).results
        assert i not in [h.item_id for h in approx]
        overlap.append(len({h.item_id for h in approx} & {h.item_id for h in exact[i]}) / 10)
        assert approx[0].score == pytest.approx(exact[i][0].score, abs=1e-4)
    assert np.mean(overlap) >= 0.95


def test_item_query_excludes_itself_and_ranks_by_similarity(embedded_demo):
    item = first_item(embedded_demo)
    result = search(embedded_demo, "efficientnet_lite0", item_id=item, k=10)
    scores = [h.score for h in result.results]
    assert len(result.results) == 10 and item not in [h.item_id for h in result.results]
    assert scores == sorted(scores, reverse=True) and [h.rank for h in result.results] == list(range(1, 11))
    assert all(h.title and h.image_path for h in result.results)
    same = sum(h.category == embedded_demo["items"].get(item)["category"] for h in result.results)
    assert same >= 3          # 12 of 300 share its category: random would give 0.4


def test_filters_still_return_k_results(embedded_demo, monkeypatch):
    item = first_item(embedded_demo)
    filters = parse_filters(["gender=women", "category=Handbags|Heels"])
    wanted = embedded_demo.execute(
        "SELECT count(*) FROM items WHERE gender = 'Women' AND category IN ('Handbags', 'Heels')").fetchone()[0]
    for limit in (20_000, 0):                                   # exact, then through Annoy (widening)
        monkeypatch.setattr(search_mod, "EXACT_LIMIT", limit)
        hits = search(embedded_demo, "efficientnet_lite0", item_id=item, k=10, filters=filters).results
        assert len(hits) == min(10, wanted)
        assert all(h.gender == "Women" and h.category in ("Handbags", "Heels") for h in hits)


def test_price_stock_and_brand_filters(embedded_demo):
    rows = embedded_demo.execute("SELECT id FROM items ORDER BY id").fetchall()
    with embedded_demo.conn:
        for n, (item_id,) in enumerate(rows):
            embedded_demo.conn.execute("UPDATE items SET price = ?, stock = ?, brand = ? WHERE id = ?",
                                       (n * 10, n % 3, "Acme" if n % 2 else "Other", item_id))
    query = rows[1][0]                                          # brand Acme
    filters = parse_filters(["price_min=500", "price_max=2000", "in_stock=yes", "exclude_same_brand=yes"])
    hits = search(embedded_demo, "efficientnet_lite0", item_id=query, k=10, filters=filters).results
    assert len(hits) == 10
    assert all(500 <= h.price <= 2000 and h.brand == "Other" for h in hits)
    stocks = dict(embedded_demo.execute("SELECT id, stock FROM items"))
    assert all(stocks[h.item_id] > 0 for h in hits)


def test_bad_filters_and_queries_say_what_is_wrong(embedded_demo):
    with pytest.raises(ValueError, match="unknown filter 'size'"):
        parse_filters(["size=M"])
    with pytest.raises(ValueError, match="needs a number"):
        parse_filters(["price_max=cheap"])
    with pytest.raises(SearchError, match="no catalog item"):
        search(embedded_demo, "efficientnet_lite0", item_id="nope")
    with pytest.raises(SearchError, match="cannot read text"):
        search(embedded_demo, "efficientnet_lite0", text="red dress")
    with pytest.raises(SearchError, match="too large"):
        search(embedded_demo, "efficientnet_lite0", image=b"\xff" * (MAX_UPLOAD_BYTES + 1))


def test_text_search_over_titles(embedded_demo):
    hits = search(embedded_demo, "minilm", text="wrist watch", k=5).results
    assert sum(h.category == "Watches" for h in hits) >= 4


def test_fusion_combines_methods(embedded_demo):
    item = first_item(embedded_demo)
    deep = search(embedded_demo, "efficientnet_lite0", item_id=item, k=10).results
    fused = search(embedded_demo, {"efficientnet_lite0": 0.7, "color_hist": 0.3}, item_id=item, k=10).results
    assert len(fused) == 10 and fused[0].method == "0.7*efficientnet_lite0+0.3*color_hist"
    deep_only = search(embedded_demo, {"efficientnet_lite0": 1.0, "color_hist": 0.0}, item_id=item, k=10).results
    assert [h.item_id for h in deep_only] == [h.item_id for h in deep]
    colour_vector = get_vector(embedded_demo, "color_hist", item)
    for hit in fused[:3]:                                       # the fused score is the weighted cosine sum
        a = get_vector(embedded_demo, "efficientnet_lite0", hit.item_id)
        b = get_vector(embedded_demo, "color_hist", hit.item_id)
        q = get_vector(embedded_demo, "efficientnet_lite0", item)
        expected = 0.7 * float(a @ q) + 0.3 * float(b @ colour_vector)
        assert hit.score == pytest.approx(expected, abs=1e-4)


def test_chi2_reranking_orders_by_chi_square(embedded_demo):
    from core.extractors.colour import chi2_distances
    item = first_item(embedded_demo)
    hits = search(embedded_demo, "color_hist", item_id=item, k=10, distance="chi2").results
    q = get_vector(embedded_demo, "color_hist", item)
    distances = chi2_distances(q, np.vstack([get_vector(embedded_demo, "color_hist", h.item_id) for h in hits]))
    assert list(distances) == sorted(distances)
    assert [h.score for h in hits] == pytest.approx(list(-distances), abs=1e-5)


@needs_shared
def test_shopper_photo_queries_in_every_format(embedded_demo):
    for photo in sorted((SHARED / "query-photos").glob("photo-1[5-9]*")):   # WebP and AVIF, up to 1440 px
        result = search(embedded_demo, "efficientnet_lite0", image=photo.read_bytes(), k=5)
        assert len(result.results) == 5 and result.query["image_sha256"]


def test_search_many_matches_single_searches(embedded_demo):
    items = [r[0] for r in embedded_demo.execute("SELECT id FROM items ORDER BY id LIMIT 8")]
    many = dict(search_many(embedded_demo, "efficientnet_lite0", items, 5))
    for i in items:
        single = search(embedded_demo, "efficientnet_lite0", item_id=i, k=5).results
        assert [h.item_id for h in many[i]] == [h.item_id for h in single]


def test_near_duplicates_find_a_product_listed_twice(embedded_demo):
    from core.near_duplicates import find_duplicates
    item = first_item(embedded_demo)
    with embedded_demo.conn:
        embedded_demo.conn.execute("INSERT INTO items (id, source, title) SELECT 'copy', source, title FROM items WHERE id = ?", (item,))
    store(embedded_demo, "efficientnet_lite0", "1", [("copy", get_vector(embedded_demo, "efficientnet_lite0", item), "h")])
    pairs = find_duplicates(embedded_demo, "efficientnet_lite0", 0.99, progress=False)
    assert [(p.a, p.b) for p in pairs] == [tuple(sorted((item, "copy")))]
    assert pairs[0].similarity == pytest.approx(1.0, abs=1e-5)
