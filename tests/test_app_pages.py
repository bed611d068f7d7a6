"""Every page of the app, run headless with streamlit.testing on the embedded demo catalog."""
from __future__ import annotations

import csv
import sys

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT

APP = ROOT / "streamlit_app"
sys.path.insert(0, str(APP))


@pytest.fixture
def app_db(embedded_demo, monkeypatch):
    path = embedded_demo.execute("PRAGMA database_list").fetchone()[2]
    monkeypatch.setenv("LOOKALIKE_DB", path)
    from core.index import build_index
    build_index(embedded_demo, "efficientnet_lite0", progress=False)
    return embedded_demo


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(APP / name), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "success", "error", "warning", "title", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def test_home_shows_counts_and_next_step(app_db):
    at = page("Home.py")
    assert [m.value for m in at.metric][:2] == ["300", "300"]
    assert "Search" in texts(at) and "Label" in texts(at)


def test_catalog_browses_with_text_and_filters(app_db):
    at = page("pages/1_Catalog.py")
    assert "300 items" in texts(at)
    at.text_input(key="browse_text").set_value("watch").run()
    expected = app_db.execute("SELECT count(*) FROM items WHERE title LIKE '%watch%'").fetchone()[0]
    assert 0 < expected < 300 and f"{expected} items" in texts(at)
    at.text_input(key="browse_text").set_value("").run()
    at.multiselect(key="browse_category").set_value(["Watches", "Heels"]).run()
    assert "24 items" in texts(at)
    at.selectbox[0].set_value(at.selectbox[0].options[1]).run()
    assert not at.exception and "methods with vectors" in str(at.get("json")[-1].proto)


def test_search_by_item_shows_k_results_and_compares(app_db):
    at = page("pages/2_Search.py")
    assert "efficientnet_lite0" in at.selectbox[1].options
    at.number_input[0].set_value(6).run()
    assert not at.exception
    results = at.session_state["search_results"]
    assert results["method"] == "efficientnet_lite0" and len(results["hits"]) == 6
    at.selectbox[2].set_value("color_hist").run()
    assert [s.value for s in at.subheader] == ["efficientnet_lite0", "color_hist"]


def test_text_search_uses_minilm(app_db):
    at = page("pages/2_Search.py")
    at.radio[0].set_value("Text").run()
    at.text_input[0].set_value("wrist watch").run()
    assert not at.exception
    hits = at.session_state["search_results"]["hits"]
    assert sum(h["category"] == "Watches" for h in hits) >= 5


def test_label_two_results_then_precision_and_export(app_db):
    at = page("pages/3_Label.py")
    at.text_input(key="labeler").set_value("ana").run()
    buttons = lambda prefix: [b for b in at.button if b.key and b.key.startswith(prefix)]   # noqa: E731
    buttons("yes_")[0].click().run()
    buttons("no_")[1].click().run()                  # fetched again: the page re-rendered
    assert not at.exception
    labels = app_db.execute("SELECT relevant, labeler, method FROM labels ORDER BY id").fetchall()
    assert labels == [(1, "ana", "efficientnet_lite0"), (0, "ana", "efficientnet_lite0")]
    assert "2 of 10 judged" in str(at.get("progress")[0].proto)

    precision = page("pages/4_Precision.py")
    table = precision.dataframe[0].value
    row = table[table["method"] == "efficientnet_lite0"].iloc[0]
    assert row["labels"] == 2 and row["P@10 (labels)"] == pytest.approx(0.5)

    export = page("pages/5_Export.py")
    export.checkbox[0].check().run()
    export.button[0].click().run()
    assert not export.exception
    path = export.session_state["export_file"]
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["item_id"] == at.session_state["label_query"]


def test_methods_page_lists_remedies_and_embeds_in_background(app_db):
    at = page("pages/6_Methods.py")
    table = at.dataframe[0].value
    vit = table[table["method"] == "vit"].iloc[0]
    assert not vit["ready"] and "download-weights vit" in vit["to enable"]
    assert table[table["method"] == "efficientnet_lite0"].iloc[0]["vectors"] == "300/300"
