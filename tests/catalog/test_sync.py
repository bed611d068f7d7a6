"""Syncing a shop's feed (core/catalog/sync.py, core/engines/sync.py): gone items gone everywhere,
kept with their labels, back when listed again; a truncated feed refused."""

from __future__ import annotations

import csv
import json

import pytest
from fastapi.testclient import TestClient

from core.api.app import create_app
from core.catalog.items import stats
from core.catalog.sync import MassRemoval, sync_feed
from core.catalog.vectors import gone_ids
from core.curation.export import export_similar
from core.curation.labels import Query, add_label, current_labels
from core.curation.suggest import suggest_queries
from core.engines.embed import embed_catalog
from core.engines.sync import sync_catalog
from core.search.near_duplicates import find_duplicates
from core.search.queries import search, search_many
from core.search.space import ItemGone, open_space

from helpers import DEMO, page, run_cli, texts

METHOD = "color_hist"  # no model: 300 photos embed in a second


def feed(tmp_path, keep: int, retitle: dict[str, str] | None = None, name: str = "feed.csv"):
    """The demo styles.csv with only its first `keep` rows, some titles changed."""
    with open(DEMO / "styles.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    path = tmp_path / name
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows[:keep]:
            writer.writerow({**row, "productDisplayName": (retitle or {}).get(row["id"], row["productDisplayName"])})
    return path, [r["id"] for r in rows[keep:]]


@pytest.fixture
def live(demo_catalog):
    embed_catalog(demo_catalog, METHOD, progress=False)
    return demo_catalog


def test_gone_items_leave_search_export_duplicates_suggestions_and_the_api(live, tmp_path):
    path, dropped = feed(tmp_path, 270)
    report = sync_catalog(live, path, DEMO / "images", progress=False)
    assert (report.feed.gone, report.feed.back, report.feed.imported.unchanged) == (30, 0, 270)
    assert gone_ids(live) == set(dropped)
    space = open_space(live, METHOD)
    everything = [h.item_id for h in search(space, item_id="10129", k=299).results]
    assert len(everything) == 269 and not set(everything) & set(dropped)  # every live item, no gone one
    assert not {h.item_id for _, hits in search_many(space, ["10129", "10150"], 50) for h in hits} & set(dropped)
    with pytest.raises(ItemGone, match="left the catalog"):
        search(space, item_id=dropped[0], k=5)
    out = tmp_path / "export.csv"
    export_similar(space, 5, out, progress=False)
    with open(out, encoding="utf-8-sig", newline="") as handle:
        exported = {v for row in csv.DictReader(handle) for v in (row["item_id"], row["neighbour_id"])}
    assert exported and not exported & set(dropped)
    pairs = find_duplicates(space, threshold=0.5, progress=False)
    assert pairs and not {i for p in pairs for i in (p.a, p.b)} & set(dropped)
    suggested = suggest_queries(live, METHOD, n=300)
    assert suggested and not {s.item_id for s in suggested} & set(dropped)
    with TestClient(create_app(live.path, keys=())) as client:
        answer = client.get("/items/10129/similar", params={"method": METHOD, "k": 299})
        assert answer.status_code == 200
        assert not {r["item_id"] for r in answer.json()["results"]} & set(dropped)
        gone = client.get(f"/items/{dropped[0]}/similar", params={"method": METHOD})
        assert gone.status_code == 404 and "left the catalog" in gone.json()["error"]


def test_gone_items_keep_their_labels_and_come_back(live, tmp_path):
    path, dropped = feed(tmp_path, 270)
    add_label(live, Query.item(dropped[0]), "10129", METHOD, 1, True, "ana")
    add_label(live, Query.item("10129"), dropped[1], METHOD, 2, False, "ana")
    sync_feed(live, path, DEMO / "images", progress=False)
    assert (stats(live).items, stats(live).gone) == (300, 30)  # kept, counted as gone
    assert current_labels(live, Query.item(dropped[0])) == {"10129": True}
    assert current_labels(live, Query.item("10129")) == {dropped[1]: False}
    whole, _ = feed(tmp_path, 300, {"10129": "Rockport Men Jefford Brown Formal Shoes, new season"}, "whole.csv")
    back = sync_catalog(live, whole, DEMO / "images", progress=False)
    assert (back.feed.back, back.feed.gone, back.feed.imported.updated) == (30, 0, 1)
    assert not gone_ids(live)
    assert dropped[0] in {h.item_id for h in search(open_space(live, METHOD), item_id="10129", k=299).results}
    assert current_labels(live, Query.item(dropped[0])) == {"10129": True}


def test_a_truncated_feed_is_refused_unless_mass_removal_is_allowed(live, tmp_path):
    path, dropped = feed(tmp_path, 200)  # a third of the shop missing
    with pytest.raises(MassRemoval, match="would remove 100 of 300 items"):
        sync_feed(live, path, DEMO / "images", progress=False)
    assert not gone_ids(live)  # nothing written
    cli = run_cli("--db", str(live.path), "sync", str(path), "--images", str(DEMO / "images"), "--json")
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1 and "--allow-mass-removal" in cli.stderr
    assert not gone_ids(live)
    cli = run_cli(
        "--db", str(live.path), "sync", str(path), "--images", str(DEMO / "images"), "--json", "--allow-mass-removal"
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["feed"]["gone"] == 100 and gone_ids(live) == set(dropped)


def test_a_feed_with_nothing_usable_removes_nothing_and_exits_non_zero(live, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("id,productDisplayName\n", encoding="utf-8")
    assert not sync_feed(live, empty, DEMO / "images", progress=False).ok and not gone_ids(live)
    cli = run_cli("--db", str(live.path), "sync", str(empty), "--images", str(DEMO / "images"))
    assert cli.returncode == 1 and not gone_ids(live)


def test_the_catalog_page_shows_gone_items_as_gone(app_db, tmp_path):
    path, dropped = feed(tmp_path, 280)
    sync_feed(app_db, path, DEMO / "images", progress=False)
    at = page("catalog")
    at.text_input(key="browse_text").set_value(dropped[0]).run()
    at.selectbox[0].select_index(1).run()
    assert "Gone since" in texts(at)
    search_page = page("search")
    assert not search_page.exception
    offered = [str(o).split(" · ")[0] for box in search_page.selectbox for o in box.options]
    assert "10129" in offered and dropped[0] not in offered


def test_a_gone_item_leaves_the_curated_lists_it_was_pinned_or_accepted_in(live, tmp_path):
    from core.curation import decisions
    from core.curation.curated import curated_search
    from core.curation.labels import Query, add_label
    from core.search.queries import search
    from core.search.space import open_space

    db = live
    query = db.execute(
        "SELECT item_id FROM embeddings WHERE method = ? ORDER BY item_id LIMIT 1", (METHOD,)
    ).fetchone()[0]
    others = [h.item_id for h in search(open_space(db, METHOD), item_id=query, k=6).results]
    pinned, accepted = others[3], others[4]
    decisions.pin(db, query, pinned, 1, "ana")
    add_label(db, Query.item(query), accepted, METHOD, 5, True, "ana")
    shown = [h.item_id for h in curated_search(open_space(db, METHOD), item_id=query, k=5).results]
    assert shown[:2] == [pinned, accepted]
    db.execute("UPDATE items SET gone_at = '2026-12-07T00:00:00Z' WHERE id IN (?, ?)", (pinned, accepted))
    db.conn.commit()
    shown = [h.item_id for h in curated_search(open_space(db, METHOD), item_id=query, k=5).results]
    assert len(shown) == 5 and not {pinned, accepted} & set(shown)
