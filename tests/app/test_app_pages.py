"""Every page of the app, run headless with streamlit.testing on the embedded demo catalog.

Each test starts the app at its entry point (Home.py: navigation, page set-up, the catalog) and
switches to the page under test, as a person clicking in the sidebar would.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from helpers import APP, ROOT, page, texts


def test_home_shows_counts_and_next_step(app_db):
    at = page("home")
    assert [m.value for m in at.metric][:2] == ["300", "300"]
    assert "Search" in texts(at) and "Label" in texts(at)
    assert "Models run on **cpu (CPU," in texts(at)  # no GPU on the test machines


def test_catalog_browses_with_text_and_filters(app_db):
    at = page("catalog")
    assert "300 items" in texts(at)
    at.text_input(key="browse_text").set_value("watch").run()
    expected = app_db.execute("SELECT count(*) FROM items WHERE title LIKE '%watch%'").fetchone()[0]
    assert 0 < expected < 300 and f"{expected} items" in texts(at)
    at.text_input(key="browse_text").set_value("").run()
    at.multiselect(key="browse_category").set_value(["Watches", "Heels"]).run()
    assert "24 items" in texts(at)
    chosen = at.selectbox[0].options[1].split(" · ")[0]
    at.selectbox[0].set_value(at.selectbox[0].options[1]).run()
    item = app_db.execute("SELECT title, category, colour, gender FROM items WHERE id = ?", [chosen]).fetchone()
    assert not at.exception and not at.get("json")  # no raw JSON: the item as a merchandiser sees it
    assert item[0] in [s.value for s in at.subheader]
    facts = at.table[0].value[""]
    assert dict(facts) == {"Category": item[1], "Colour": item[2], "Gender": item[3], "Id": chosen}  # no NULLs
    assert {"season", "usage"} <= set(at.table[1].value.index)  # the attributes, as a table
    assert all(t.proto.hide_header for t in at.table[:2])  # no empty header row above them
    assert "Look-alikes by color_hist, efficientnet_lite0, hybrid, minilm (Search page)." in texts(at)


def test_search_by_item_shows_k_results_and_compares(app_db):
    at = page("search")
    assert at.selectbox[1].options == ["efficientnet_lite0", "color_hist", "hybrid"]  # image methods with vectors
    assert at.number_input[0].label == "Results"
    at.number_input[0].set_value(6).run()
    assert not at.exception
    results = at.session_state["search_results"]
    assert results["method"] == "efficientnet_lite0" and len(results["hits"]) == 6
    first = results["hits"][0]
    assert f"1. {first.title} · {first.item_id} · score " in texts(at)  # the id tells same titles apart
    assert "more methods need weights, training or embedding: see Methods" in str(at.get("page_link")[0].proto)
    at.selectbox[2].set_value("color_hist").run()
    assert [s.value for s in at.subheader] == ["efficientnet_lite0", "color_hist"]


def test_text_search_uses_minilm(app_db):
    at = page("search")
    at.radio[0].set_value("Text").run()
    assert at.text_input[0].value == "" and at.text_input[0].placeholder == "e.g. black leather handbag"
    assert not at.subheader  # no result grid before a text is typed
    at.text_input[0].set_value("wrist watch").run()
    assert not at.exception
    hits = at.session_state["search_results"]["hits"]
    assert sum(h.category == "Watches" for h in hits) >= 5


def test_label_two_results_then_precision_and_export(app_db):
    at = page("label")
    at.text_input(key="labeler").set_value("ana").run()
    buttons = lambda prefix: [b for b in at.button if b.key and b.key.startswith(prefix)]  # noqa: E731
    buttons("yes_label")[0].click().run()
    assert "1 of 10 judged for this query · 1 label in the catalog" in str(at.get("progress")[0].proto)
    buttons("no_label")[1].click().run()  # fetched again: the page re-rendered
    assert not at.exception
    labels = app_db.execute("SELECT relevant, labeler, method FROM labels ORDER BY id").fetchall()
    assert labels == [(1, "ana", "efficientnet_lite0"), (0, "ana", "efficientnet_lite0")]
    assert "2 of 10 judged" in str(at.get("progress")[0].proto)

    precision = page("precision")
    table = precision.dataframe[0].value
    row = table[table["method"] == "efficientnet_lite0"].iloc[0]
    assert row["labels"] == 2 and row["P@10"] == pytest.approx(0.5)

    export = page("export")
    export.checkbox[0].check().run()
    export.button[0].click().run()
    assert not export.exception
    path = export.session_state["export_file"]
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["item_id"] == at.session_state["label_query"]
    assert rows[0]["item_image_url"] == "" and rows[0]["item_image_file"].endswith(".jpg")  # local photos, no URLs
    shown = str(export.get("progress")[0].proto)
    assert "1 rows ready: similar_efficientnet_lite0_top10_" in shown and str(app_db.data_dir) not in shown


def test_label_grades_close_and_queues_a_second_opinion_and_the_disagreement(app_db):
    at = page("label")
    at.text_input(key="labeler").set_value("ana").run()
    [b for b in at.button if b.key and b.key.startswith("close_label")][0].click().run()
    at.button(key="no_next").click().run()  # N: wrong to the next result not judged
    assert not at.exception
    stored = app_db.execute("SELECT rank, relevant, grade, labeler FROM labels ORDER BY id").fetchall()
    assert stored == [(1, 0, "close", "ana"), (2, 0, "wrong", "ana")]
    assert "The verdict that counts: the latest verdict on each pair" in texts(at)

    at.text_input(key="labeler").set_value("bo").run()
    at.radio(key="label_mode").set_value("Pairs to judge").run()
    assert at.selectbox(key="label_queue").value.startswith("second opinion")
    offered = [b.key for b in at.button if b.key and b.key.startswith("yes_queue_")]
    assert len(offered) == 2 and not any("close" in t.value for t in at.text)  # ana's verdicts are not shown
    at.button(key=offered[0]).click().run()  # bo: good, where ana said close
    assert app_db.execute("SELECT grade, labeler FROM labels ORDER BY id DESC LIMIT 1").fetchone() == ("good", "bo")
    at.selectbox(key="label_queue").set_value("disagreements to settle").run()
    assert not at.exception and "Nothing to judge here." in texts(at)  # bo's verdict is the latest: settled for bo
    at.text_input(key="labeler").set_value("cy").run()
    ana = app_db.execute(
        "SELECT a.grade FROM labels a JOIN labels b USING (query_key, candidate_id) WHERE a.labeler = 'ana' "
        "AND b.labeler = 'bo'"
    ).fetchone()[0]
    assert [t.value for t in at.text][-1] == f"ana: {ana} · bo: good · counts: good"


def test_methods_page_leads_with_what_a_merchandiser_does_and_folds_the_rest(app_db):
    at = page("methods")
    shown = texts(at)
    assert shown.index("**Embed + index** a method") < shown.index("**Tune** a method") < shown.index("**Compare**")
    assert (
        "Searchable now: **efficientnet_lite0** (photos)" in shown and "**minilm** (titles and descriptions)" in shown
    )
    [admin] = at.expander
    assert admin.label.startswith("For your administrator") and not admin.proto.expanded  # folded at first
    assert at.table[0] in list(admin.table) and at.selectbox(key="device") in list(admin.selectbox)
    assert [s.value for s in at.subheader][:2] == ["Embed and index", "Tune a method"]  # both before the details
    cells = at.table[0].value.to_string() + shown
    assert str(app_db.data_dir) not in cells and str(app_db.models_dir) not in cells  # no server folder
    assert f"{app_db.models_dir.name}/vit" in at.table[0].value.loc["vit", "next step"]


def test_methods_page_lists_every_method_with_its_remedy(app_db):
    at = page("methods")
    table = at.table[0].value  # a static table: every row and column on the page
    assert table.loc["vit", "state"] == "missing" and "download-weights vit" in table.loc["vit", "next step"]
    assert table.loc["efficientnet_lite0", "vectors"] == "300/300"
    assert {name: table.loc[name, "state"] for name in ("efficientnet_lite0", "hybrid", "minilm")} == dict.fromkeys(
        ("efficientnet_lite0", "hybrid", "minilm"), "ready"
    )


def test_methods_page_device_setting_says_where_models_run(app_db):
    from core.methods import devices

    at = page("methods")
    assert at.selectbox(key="device").value == "auto" and "Torch models run on cpu" in texts(at)
    at.selectbox(key="device").set_value("cuda").run()  # no GPU here: one line, CPU kept
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("--device cuda: torch sees no CUDA GPU")
    assert "Using cpu (CPU," in at.error[0].value
    assert devices.resolve() == "cpu"
    at.selectbox(key="device").set_value("cpu").run()
    assert not at.error and "Torch models run on cpu" in texts(at)


def test_catalog_imports_an_uploaded_csv_and_reports_bad_rows(catalog, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_DB", str(catalog.path))
    lines = (ROOT / "demo" / "styles.csv").read_text(encoding="utf-8").splitlines()
    upload = "\n".join(lines[:6] + [",Men,,,,,,,,no id on this row"]) + "\n"
    at = page("catalog")
    at.radio[0].set_value("Product CSV")
    at.file_uploader[0].set_value(("mine.csv", upload.encode(), "text/csv"))
    at.text_input[0].set_value(str(ROOT / "demo" / "images"))
    at.button[0].click().run()
    assert not at.exception
    assert catalog.execute("SELECT count(*) FROM items").fetchone()[0] == 5
    assert "5 items imported from 6 rows: 5 new, 0 updated, 0 unchanged" in texts(at)
    assert len(at.dataframe[0].value) >= 1  # the importer's problem report, row by row
    assert "5 items" in texts(at)  # and the browse grid sees them


def test_catalog_imports_a_csv_with_a_zip_of_photos(catalog, monkeypatch):
    import io
    import zipfile

    monkeypatch.setenv("LOOKALIKE_DB", str(catalog.path))
    lines = (ROOT / "demo" / "styles.csv").read_text(encoding="utf-8").splitlines()[:4]
    ids = [line.split(",")[0] for line in lines[1:]]
    photos = io.BytesIO()
    with zipfile.ZipFile(photos, "w") as archive:
        for item_id in ids:
            archive.write(ROOT / "demo" / "images" / f"{item_id}.jpg", f"shop/photos/{item_id}.jpg")
        archive.writestr("../outside.jpg", b"not a photo at all")
    at = page("catalog")
    at.radio(key="import_kind").set_value("Product CSV").run()
    assert [t.label for t in at.text_input][:2] == ["…or the photo folder on this computer", "id column"]
    at.file_uploader[0].set_value(("mine.csv", ("\n".join(lines) + "\n").encode(), "text/csv"))
    at.file_uploader[1].set_value(("photos.zip", photos.getvalue(), "application/zip"))
    at.button[0].click().run()
    assert not at.exception
    assert "3 items imported from 3 rows: 3 new" in texts(at) and "photos ok 3, not usable 0" in texts(at)
    folder = {Path(p).parent for (p,) in catalog.execute("SELECT path FROM images")}
    assert len(folder) == 1 and folder.pop().parent == catalog.files_dir / "photos"
    assert not (catalog.files_dir / "photos" / "outside.jpg").exists()
    farfetch = page("catalog")  # Farfetch listings: no product-CSV column fields
    assert [t.label for t in farfetch.text_input][0] == "…or the photo folder on this computer"
    assert "id column" not in [t.label for t in farfetch.text_input]


def test_photo_search_takes_webp_upload_and_rejects_oversize(app_db):
    import io

    from PIL import Image

    item, path = app_db.execute(
        "SELECT item_id, path FROM images WHERE status = 'ok' ORDER BY item_id LIMIT 1"
    ).fetchone()
    webp = io.BytesIO()
    Image.open(path).convert("RGB").save(webp, "WEBP", quality=80)
    at = page("search")
    at.radio[0].set_value("Photo").run()
    at.file_uploader[0].set_value(("shopper.webp", webp.getvalue(), "image/webp")).run()
    assert not at.exception
    hits = at.session_state["search_results"]["hits"]
    assert len(hits) == 10 and hits[0].item_id == item  # the same photo, re-encoded, comes first

    from core.catalog.images import MAX_UPLOAD_BYTES

    at.file_uploader[0].set_value(("huge.png", b"\0" * (MAX_UPLOAD_BYTES + 1), "image/png")).run()
    assert any("over 20 MB" in e.value for e in at.error)


def test_label_name_survives_page_switch_and_keyboard_buttons_judge_in_order(app_db):
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=120)
    at.run()
    at.switch_page("views/label.py").run()
    at.text_input(key="labeler").set_value("bo").run()
    at.switch_page("views/precision.py").run()
    at.switch_page("views/label.py").run()
    assert at.text_input(key="labeler").value == "bo"
    at.button(key="yes_next").click().run()  # Y: the first result not judged yet
    at.button(key="no_next").click().run()  # N: then the second
    assert not at.exception
    assert app_db.execute("SELECT rank, relevant, labeler FROM labels ORDER BY id").fetchall() == [
        (1, 1, "bo"),
        (2, 0, "bo"),
    ]


def test_label_page_offers_the_queries_that_teach_most_first(app_db):
    """The default order is `labels suggest`'s (20 at a time, among up to 2,000 items): the first
    suggestion, then the next once that one is judged, never one already judged."""
    from core.curation.suggest import suggest_queries

    at = page("label")
    assert at.selectbox(key="label_order").value == "suggested: teaches most"
    first, second = (s.item_id for s in suggest_queries(app_db, "efficientnet_lite0", n=20, pool=2000)[:2])
    assert at.session_state["label_query"] == first
    at.text_input(key="labeler").set_value("ana").run()
    [b for b in at.button if b.key and b.key.startswith("yes_label")][0].click().run()
    [b for b in at.button if b.label == "Next query ▶"][0].click().run()
    assert at.session_state["label_query"] == second and not at.exception
    judged = {r[0] for r in app_db.execute("SELECT DISTINCT query_key FROM labels")}
    assert judged == {first}


def test_label_next_query_by_category(app_db):
    at = page("label")
    at.selectbox(key="label_order").set_value("by category").run()
    at.selectbox(key="label_category").set_value("Watches").run()
    query = at.session_state["label_query"]
    assert app_db.execute("SELECT category FROM items WHERE id = ?", [query]).fetchone()[0] == "Watches"
    assert "Watches" in texts(at)


def test_export_page_merges_a_labels_csv_and_reports_bad_rows(app_db, tmp_path):
    ids = [r[0] for r in app_db.execute("SELECT id FROM items ORDER BY id LIMIT 3")]
    upload = (
        "query_key,candidate_id,method,rank,relevant,labeler\n"
        f"{ids[0]},{ids[1]},efficientnet_lite0,1,yes,cy\n"
        f"{ids[0]},{ids[2]},efficientnet_lite0,2,no,cy\n"
        f"{ids[0]},no-such-item,efficientnet_lite0,3,no,cy\n"
    )
    at = page("export")
    at.file_uploader[0].set_value(("team.csv", upload.encode(), "text/csv")).run()
    [button] = [b for b in at.button if b.label == "Import labels"]
    button.click().run()
    assert not at.exception
    assert "2 new labels (0 already present, 1 rejected)" in texts(at)
    assert app_db.execute("SELECT count(*) FROM labels WHERE labeler = 'cy'").fetchone()[0] == 2


def finished_job(name: str, timeout: float = 60, status: str = "done"):
    """Wait for a background job of the app to end, with `status` (by default: it succeeded)."""
    import time

    import ui

    job = ui.jobs().get(name)
    deadline = time.time() + timeout
    while job.status == "running" and time.time() < deadline:
        time.sleep(0.2)
    assert job.status == status, job.error
    return job


def test_methods_page_embeds_and_indexes_in_background(app_db):
    with app_db.conn:  # the demo set-up embeds hybrid: start without its vectors
        app_db.conn.execute("DELETE FROM embeddings WHERE method = 'hybrid'")
    at = page("methods")
    assert at.table[0].value.loc["hybrid", "state"] == "not embedded"
    at.selectbox(key="embed_method").set_value("hybrid")
    [button] = [b for b in at.button if b.label == "Embed + index"]
    button.click().run()
    finished_job("embed hybrid")
    at.run()
    hybrid = at.table[0].value.loc["hybrid"]
    assert hybrid["vectors"] == "300/300" and hybrid["index"] == "ready" and hybrid["state"] == "ready"
    assert any("embed hybrid: done" in s.value for s in at.success)


def test_methods_page_trains_the_autoencoder_with_a_loss_chart(catalog, tmp_path, monkeypatch):
    from core.catalog.importers import import_csv

    lines = (ROOT / "demo" / "styles.csv").read_text(encoding="utf-8").splitlines()
    small = tmp_path / "small.csv"
    small.write_text("\n".join(lines[:25]) + "\n", encoding="utf-8")  # 24 photos: one quick epoch
    import_csv(catalog, small, ROOT / "demo" / "images", progress=False)
    monkeypatch.setenv("LOOKALIKE_DB", str(catalog.path))
    at = page("methods")
    at.number_input[0].set_value(2)
    [button] = [b for b in at.button if b.label == "Train autoencoder"]
    button.click().run()
    job = finished_job("train autoencoder")
    assert len(job.history) == 2 and all(loss > 0 for loss in job.history)
    at.run()
    assert any("train autoencoder: done" in s.value for s in at.success)
    assert at.get("vega_lite_chart")  # the loss curve
    assert at.table[0].value.loc["autoencoder", "state"] == "not embedded"  # trained: ready to embed


def tune_on_methods_page(at, name: str, targets=("category", "colour")):
    at.multiselect(key="tune_bases").set_value(["efficientnet_lite0", "color_hist"])
    at.multiselect(key="tune_targets").set_value(list(targets))
    at.text_input(key="tune_name").set_value(name).run()  # the button is enabled once all are given
    [button] = [b for b in at.button if b.label == "Tune"]
    button.click().run()
    assert not at.exception


def test_methods_page_tunes_in_background_and_shows_base_against_tuned(app_db):
    at = page("methods")
    assert {"category", "colour", "usage"} <= set(at.multiselect(key="tune_targets").options)
    assert at.multiselect(key="tune_bases").options == [
        "efficientnet_lite0",
        "color_hist",
        "hybrid",
        "minilm",
    ]  # with vectors; text too
    tune_on_methods_page(at, "shape_colour")
    job = finished_job("tune shape_colour", timeout=180)
    at.run()
    [weights] = [d.value for d in at.dataframe if "signal" in d.value.columns]
    learnt = job.result.signal_weights.item
    named = {  # signals in a merchandiser's words, each naming the method it reads where there is one
        "efficientnet_lite0": "look of the photo (efficientnet_lite0)",
        "color_hist": "colours of the photo (color_hist)",
        "votes": "what similar labelled items are",
        "same_gender": "same gender",
        "head": "all of them, blended as it learnt",
    }
    for signal in learnt:
        if signal.startswith("votes_"):
            named[signal] = (
                f"what similar labelled items are, by the look of the photo ({signal.removeprefix('votes_')})"
            )
    assert dict(zip(weights["signal"], weights["weight (item queries)"])) == pytest.approx(
        {named[s]: w for s, w in learnt.items()}
    )
    assert not [s for s in weights["signal"] if "_" in s.split(" (")[0]]  # no code names outside the brackets
    described = dict(zip(weights["signal"], weights["what it is"]))
    assert described[named["efficientnet_lite0"]] == "the efficientnet_lite0 method's vectors"
    assert learnt["votes"] > 0 and described[named["votes"]].startswith("the target values of the 20 items it learnt")
    assert described["same gender"] == "both items have the same gender"  # the demo listings have a gender
    [table] = [d.value for d in at.dataframe if "tuned" in d.value.columns]
    joint = table[table["measure"] == "of the 10 nearest, the share with the same category and colour"].set_index(
        "over"
    )
    record = job.result.metrics["category,colour"]
    among = "items it did not learn from, among themselves"
    whole = "items it did not learn from, in the whole catalog"
    assert joint.loc[among, "base"] == pytest.approx(record.base_held_out)
    assert joint.loc[among, "tuned"] == pytest.approx(record.tuned_held_out)
    assert joint.loc[whole, "base"] == pytest.approx(record.base_catalog)
    assert set(table["measure"]) == {
        f"of the 10 nearest, the share with the same {what}" for what in ("category", "colour", "category and colour")
    }
    assert "held-out" not in texts(at) and "P@10" not in texts(at)
    assert table["base"].between(0, 1).all() and table["tuned"].between(0, 1).all()
    assert joint.loc[whole, "tuned"] > joint.loc[whole, "base"]  # learnt, hence saved
    assert app_db.execute("SELECT version FROM tuned_methods WHERE name = 'shape_colour'").fetchall() == [(1,)]
    assert "Saved shape_colour version 1. Next: **Embed + index** shape_colour" in texts(at)
    assert any("tune shape_colour: done. saved" in s.value for s in at.success)
    assert "shape_colour" in at.selectbox(key="embed_method").options  # a method like any other now
    at.selectbox(key="embed_method").set_value("shape_colour")
    [embed] = [b for b in at.button if b.label == "Embed + index"]
    embed.click().run()
    finished_job("embed shape_colour")
    assert app_db.execute("SELECT count(*) FROM embeddings WHERE method = 'shape_colour'").fetchone()[0] == 300

    tune_on_methods_page(at, "color_hist")  # a built-in name: refused at once
    assert [e.value for e in at.error] == ["'color_hist' is a built-in method; choose another name for the tuned one"]
    import ui

    assert ui.jobs().get("tune color_hist") is None

    at.multiselect(key="tune_targets").set_value([])  # labels only, but none are stored
    at.checkbox(key="tune_labels").check()
    at.text_input(key="tune_name").set_value("from_labels").run()
    [button] = [b for b in at.button if b.label == "Tune"]
    button.click().run()
    finished_job("tune from_labels", status="failed")
    at.run()
    assert [e.value for e in at.error] == [
        "tune from_labels stopped: no relevance labels between training items with vectors; label some results first"
    ]


def test_label_page_judges_an_uploaded_photos_results_and_remembers_the_name(app_db):
    from core.catalog.images import sha256_bytes
    from core.curation.preferences import load_preferences

    item, path = app_db.execute(
        "SELECT item_id, path FROM images WHERE status = 'ok' ORDER BY item_id LIMIT 1"
    ).fetchone()
    data = open(path, "rb").read()
    at = page("label")
    at.radio(key="label_mode").set_value("Uploaded photo").run()
    at.text_input(key="labeler").set_value("dee").run()
    at.file_uploader(key="label_upload").set_value(("shopper.jpg", data, "image/jpeg")).run()
    assert not at.exception
    at.button(key=f"yes_label{item}").click().run()  # the same photo is the first result
    at.button(key="no_next").click().run()  # N: the second
    assert not at.exception
    assert app_db.execute(
        "SELECT query_kind, query_key, candidate_id, rank, relevant, labeler, method FROM labels ORDER BY id"
    ).fetchall()[0] == ("upload", sha256_bytes(data), item, 1, 1, "dee", "efficientnet_lite0")
    assert app_db.execute("SELECT query_kind, rank, relevant FROM labels ORDER BY id").fetchall()[1] == ("upload", 2, 0)
    assert "2 of 10 judged for this query · 2 labels in the catalog" in str(at.get("progress")[0].proto)
    captions = [i.caption for image in at.get("image") for i in image.proto.imgs]
    assert any(c.startswith("Your photo, uploaded at ") for c in captions)
    assert load_preferences(app_db.data_dir) == {"labeler": "dee"}

    fresh = page("label")  # a new session (or a restarted app)
    assert fresh.text_input(key="labeler").value == "dee" and not fresh.warning
    precision = page("precision")
    table = precision.dataframe[0].value
    row = table[table["method"] == "efficientnet_lite0"].iloc[0]
    assert (row["queries"], row["labels"], row["P@10"]) == (1, 2, pytest.approx(0.5))  # as shown
    assert list(table["method"]) == ["efficientnet_lite0"]
    assert "No judged result in the top 10 of: color_hist, hybrid, minilm." in texts(precision)
    assert list(precision.dataframe[1].value["category"]) == ["uploaded photos"]


def test_precision_page_marks_a_tuned_method_beside_its_bases(app_db):
    from core.curation import tuning
    from core.curation.labels import judge_by_attributes
    from core.methods.heads import head_vectors

    tuning.tune(
        app_db,
        "shape_colour",
        ["efficientnet_lite0", "color_hist"],
        ["category", "colour"],
        force=True,
        options=tuning.TuneOptions(dim=32, epochs=5),
        progress=False,
    )
    ids, vectors, _ = head_vectors(app_db, "shape_colour")
    count = judge_by_attributes(app_db, ids, vectors, [0, 7, 42], "category", "sim", "shape_colour")
    relevant = app_db.execute("SELECT sum(relevant) FROM labels WHERE method = 'shape_colour'").fetchone()[0]
    at = page("precision")
    assert not at.exception
    table = at.dataframe[0].value.set_index("method")
    assert table.loc["shape_colour", "tuned"] == "v1"
    assert "shape_colour v1 over efficientnet_lite0 + color_hist." in texts(at)
    assert table.loc["shape_colour", "labels"] == count == 30
    assert table.loc["shape_colour", "P@10"] == pytest.approx(relevant / count)
    assert table.loc["efficientnet_lite0", "tuned"] == ""
    assert set(table.index) == {"efficientnet_lite0", "color_hist", "hybrid", "minilm", "shape_colour"}

    from core.engines.embed import embed_catalog

    embed_catalog(app_db, "shape_colour", progress=False)  # v1's vectors, then a re-tune: v2, not embedded
    options = tuning.TuneOptions(dim=32, epochs=5)
    tuning.tune(app_db, "shape_colour", ["efficientnet_lite0", "color_hist"], ["colour"], force=True, options=options)
    at = page("precision")
    assert at.dataframe[0].value.set_index("method").loc["shape_colour", "tuned"] == "v1 (v2 not embedded yet)"
    assert "shape_colour v1 (v2 not embedded yet) over efficientnet_lite0 + color_hist." in texts(at)
    import ui

    ui._methods.clear()  # the app looks the methods up again 30 s on, or when its own job ends: not yet here
    home = page("home")
    methods = home.dataframe[0].value.set_index("method")
    assert methods.loc["shape_colour", "state"] == "changed" and methods.loc["efficientnet_lite0", "state"] == "ready"
    assert "shape_colour changed since its vectors were made: searches use the old ones" in texts(home)


def test_search_shows_the_curated_list_with_badges_a_raw_toggle_and_steering_buttons(app_db):
    from core.curation import decisions
    from core.curation.labels import Query, add_label

    at = page("search")
    query = at.selectbox[0].value
    model = [h.item_id for h in at.session_state["search_results"]["hits"]]
    add_label(app_db, Query.item(query), model[0], "efficientnet_lite0", 1, False, "ana")
    decisions.pin(app_db, query, model[9], 1, "ana")
    at.run()
    hits = at.session_state["search_results"]["hits"]
    assert hits[0].item_id == model[9] and hits[0].reason == "pinned" and model[0] not in {h.item_id for h in hits}
    badges = [m.value for m in at.markdown if "badge[" in m.value]
    assert badges[0] == ":violet-badge[pinned]" and ":blue-badge[steered]" in badges
    less = [b for b in at.button if b.label == "Less like this"]
    assert len(less) == 10
    unliked = hits[1].item_id
    less[1].click().run()
    assert unliked not in {h.item_id for h in at.session_state["search_results"]["hits"]}
    assert f"less like {unliked}" in texts(at)
    at.toggle(key="search_curated").set_value(False).run()
    raw = at.session_state["search_results"]
    assert not raw["curated"] and [h.item_id for h in raw["hits"]] == model
    assert {h.reason for h in raw["hits"]} == {"model"} and not [b for b in at.button if b.label == "Less like this"]


def test_label_page_adds_the_steered_refill_under_the_models_list(app_db):
    from core.curation.curated import curated_search
    from core.curation.labels import Query, add_label
    from core.search.queries import search
    from core.search.space import open_space

    at = page("label")
    at.text_input(key="labeler").set_value("ana").run()
    query = at.session_state["label_query"]
    model = [h.item_id for h in search(open_space(app_db, "efficientnet_lite0"), item_id=query, k=10).results]
    assert "Steered refill" not in [s.value for s in at.subheader]
    for rank in (1, 2, 3):
        add_label(app_db, Query.item(query), model[rank - 1], "efficientnet_lite0", rank, False, "ana")
    at.run()
    assert "Steered refill" in [s.value for s in at.subheader]
    curated = curated_search(open_space(app_db, "efficientnet_lite0"), item_id=query, k=10).results
    refill = [h.item_id for h in curated if h.item_id not in model]
    yes = [b.key for b in at.button if b.label == "✓"]  # good, its sign only in the grid
    assert refill and yes == [f"yes_label{i}" for i in model] + [f"yes_refill{i}" for i in refill]


def test_search_pins_hides_and_undoes_in_the_typed_name(app_db):
    from core.curation import decisions

    at = page("search")
    query = at.selectbox[0].value
    hits = [h.item_id for h in at.session_state["search_results"]["hits"]]
    at.text_input(key="labeler").set_value("ana").run()
    at.selectbox(key="curate_item").set_value(hits[6]).run()
    at.number_input(key="curate_place").set_value(1).run()
    next(b for b in at.button if b.label == "Pin at this place").click().run()
    assert not at.exception and at.session_state["search_results"]["hits"][0].item_id == hits[6]
    at.selectbox(key="curate_item").set_value(hits[2]).run()
    next(b for b in at.button if b.label == "Hide everywhere").click().run()
    assert hits[2] not in {h.item_id for h in at.session_state["search_results"]["hits"]}
    assert [(c.kind, c.author) for c in decisions.history(app_db)] == [("pin", "ana"), ("hide", "ana")]
    assert decisions.curation_snapshot(app_db).pins == {query: [(1, hits[6])]}
    next(b for b in at.button if b.label == "Undo the last change").click().run()
    assert hits[2] in {h.item_id for h in at.session_state["search_results"]["hits"]}
    assert f"hide {hits[2]} undone" in texts(at)


HOSTILE = " ![p](http://host/t.png) [click](http://evil.example) $x^2$ <img src=x> :red[red]"
UNESCAPED = re.compile(r"(?<!\\)(\]\(|!\[|<img|\$|:red\[)")  # a link, an image, HTML, LaTeX, a colour


def markdown_shown(at) -> list[str]:
    """Every Markdown source the page sends: texts, headers, messages, captions and st.table cells."""
    kinds = ("markdown", "caption", "info", "success", "error", "warning", "title", "subheader", "header")
    shown = [str(e.value) for kind in kinds for e in getattr(at, kind)]
    for table in at.table:
        frame = table.value
        shown += [str(v) for v in frame.to_numpy().ravel()] + [str(i) for i in frame.index]
    return shown


def test_catalog_text_is_shown_as_text_on_every_page(app_db):
    """Hostile titles, brands, categories, descriptions and attribute names: no page renders their links or
    images (a browser would fetch http://host/t.png), LaTeX or colours; they show as the text they are."""
    app_db.execute(
        "UPDATE items SET title = title || ?, brand = 'Maker' || ?, description = 'About' || ?", [HOSTILE] * 3
    )
    attributes = json.dumps({"[k](http://evil.example)": "v" + HOSTILE})
    app_db.execute("UPDATE items SET category = category || ?, attributes = ?", [HOSTILE, attributes])
    app_db.conn.commit()
    at = page("catalog")
    at.selectbox[0].set_value(at.selectbox[0].options[1]).run()
    search = page("search")
    label = page("label")
    for at_page in (at, search, label):
        assert not at_page.exception
        shown = markdown_shown(at_page)
        assert any("http\\://host/t.png" in text for text in shown)  # the hostile text is shown, escaped
        assert not [text for text in shown if UNESCAPED.search(text)]


def test_activity_page_lists_who_did_what_newest_first_and_by_person(app_db):
    from core.curation import decisions
    from core.curation.labels import Query, add_label

    a, b, c = (i for (i,) in app_db.execute("SELECT id FROM items ORDER BY id LIMIT 3"))
    add_label(app_db, Query.item(a), b, "efficientnet_lite0", 1, True, "ana")
    decisions.hide(app_db, c, "bo")
    at = page("activity")
    rows = at.dataframe[0].value
    assert list(rows["who"][:2]) == ["bo", "ana"] and list(rows["did"][:2]) == ["curate", "label"]
    at.selectbox(key="activity_person").set_value("ana").run()
    assert list(at.dataframe[0].value["who"]) == ["ana"]


def test_with_sign_in_on_nobody_gets_only_the_page_saying_whom_to_ask(app_db, monkeypatch, tmp_path):
    (tmp_path / "roles.csv").write_text("*@shop.com,viewer\nboss@shop.com,admin\n")
    monkeypatch.setenv("LOOKALIKE_AUTH", "proxy")
    monkeypatch.setenv("LOOKALIKE_ROLES_FILE", str(tmp_path / "roles.csv"))
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=120).run()  # no proxy header: nobody
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["No access"]
    assert "Nobody is signed in" in texts(at) and "ask boss@shop.com" in texts(at).replace("\\", "")
    assert "Search" not in texts(at)


def test_export_page_exports_labels_on_a_click_only(app_db):
    from core.curation.labels import Query, add_label

    a, b = (i for (i,) in app_db.execute("SELECT id FROM items ORDER BY id LIMIT 2"))
    add_label(app_db, Query.item(a), b, "efficientnet_lite0", 1, True, "ana")
    exports = "SELECT count(*) FROM activity WHERE action = 'export'"
    at = page("export")
    assert app_db.execute(exports).fetchone()[0] == 0  # a visit exports nothing (nor fills the activity)
    next(b for b in at.button if b.label == "Export labels (CSV)").click().run()
    assert app_db.execute(exports).fetchone()[0] == 1
    assert "Download all 1 labels (CSV)" in [b.label for b in at.get("download_button")]


PHOTO = (ROOT / "demo" / "images" / "10129.jpg").read_bytes()


def png_400_megapixels() -> bytes:
    """A valid black-and-white PNG of 20,000 x 20,000 pixels (about 50 kB: its rows compress to nothing)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    side = 20_000
    packer = zlib.compressobj(9)
    row = b"\0" * (1 + side // 8)  # filter byte + one bit a pixel
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", data)
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("notes.png", b"%PDF-1.4 a document, not a photo", "not a readable image"),
        ("cut.jpg", PHOTO[: len(PHOTO) // 2], "truncated"),
        ("huge.png", png_400_megapixels(), "too large (over 40,000,000 pixels)"),
    ],
    ids=["not-an-image", "truncated-jpeg", "400-megapixels"],
)
def test_a_bad_photo_upload_is_one_line_and_search_stays_usable(app_db, name, data, reason):
    at = page("search")
    at.radio[0].set_value("Photo").run()
    at.file_uploader[0].set_value((name, data, "image/png")).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and reason in at.error[0].value
    assert not at.subheader  # nothing was searched with it
    at.file_uploader[0].set_value(("shopper.jpg", PHOTO, "image/jpeg")).run()  # the page still works
    assert not at.exception and not at.error
    assert len(at.session_state["search_results"]["hits"]) == 10


def labels_upload(app_db, content: bytes):
    """The Export page after merging an uploaded labels CSV."""
    at = page("export")
    at.file_uploader[0].set_value(("team.csv", content, "text/csv")).run()
    [button] = [b for b in at.button if b.label == "Import labels"]
    button.click().run()
    return at


def test_labels_csv_that_is_not_text_or_has_huge_ranks_is_reported(app_db):
    a, b = [r[0] for r in app_db.execute("SELECT id FROM items ORDER BY id LIMIT 2")]
    header = "query_key,candidate_id,method,rank,relevant,labeler\n"
    bad = {
        "utf-16 without a byte-order mark": f"{header}{a},{b},color_hist,1,yes,ana\n".encode("utf-16-le"),
        "a spreadsheet saved as .csv": b"PK\x03\x04\x14\x00\x06\x00" + b"\0" * 64 + b"[Content_Types].xml",
        "a NUL in the header": b"query_key,candidate_id\0,method,rank,relevant,labeler\n",
        "a header cell over the reader's limit": (header[:-1] + "," + "h" * 2_000_000 + "\n").encode(),
    }
    for what, content in bad.items():
        at = labels_upload(app_db, content)
        assert not at.exception, (what, at.exception)
        assert "0 new labels" in texts(at) and len(at.dataframe[0].value) == 1, what
    rows = [
        f"{a},{b},color_hist,{'9' * 5000},yes,Zoë,",
        f"{a},{b},color_hist,1,yes,Zoë,0001-01-01T00:00:00+01:00",
        f"{a},{b},color_hist,2,no,Zoë,2024-05-01T09:30:00Z",
    ]
    at = labels_upload(app_db, (header.replace("labeler", "labeler,created_at") + "\n".join(rows)).encode("cp1252"))
    assert not at.exception, at.exception
    assert "1 new labels (0 already present, 3 rejected)" in texts(at)  # the encoding note and two rows
    problems = at.dataframe[0].value["problem"].tolist()
    assert "not UTF-8" in problems[0] and "not a whole number" in problems[1] and "out of range" in problems[2]
    assert all(len(problem) < 200 for problem in problems)
    assert app_db.execute("SELECT rank, labeler FROM labels").fetchall() == [(2, "Zoë")]


def test_an_export_that_cannot_be_written_is_one_line(app_db):
    (app_db.exports_dir).write_text("a file where the exports folder should be")
    at = page("export")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "exports" in at.error[0].value
    assert "export_file" not in at.session_state


def test_the_app_says_photo_missing_instead_of_breaking(catalog, deleted_photos, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_DB", str(catalog.path))
    at = page("search")
    at.selectbox[0].set_value(deleted_photos[0]).run()  # the query's own photo is gone too
    assert not at.exception, at.exception
    assert "Query · photo missing" in texts(at)
    assert [c.value for c in at.caption].count("photo missing") == 1  # the other deleted one, among the results
    assert len(at.session_state["search_results"]["hits"]) == 5
    export = page("export")
    export.button[0].click().run()
    assert not export.exception
    assert "2 items' photos were deleted or moved since import" in texts(export)


def test_an_infinite_price_stored_before_keeps_the_pages_working(app_db):
    from helpers import page

    with app_db.conn:
        app_db.conn.execute("UPDATE items SET price = 9e999 WHERE id = '10129'")
        app_db.conn.execute("UPDATE items SET price = 10 WHERE id = '10130'")
        app_db.conn.execute("UPDATE items SET price = 99 WHERE id = '10131'")
    for name in ("catalog", "search", "export"):
        assert not page(name).exception


def test_the_home_page_says_what_is_wrong_with_the_device(app_db, monkeypatch):
    from helpers import page, texts

    monkeypatch.setenv("LOOKALIKE_DEVICE", "tpu")
    at = page("home")
    assert not at.exception and "LOOKALIKE_DEVICE=tpu" in texts(at)


def app_import(tmp_path: Path, csv_path: Path, folder: Path):
    from helpers import page

    at = page("catalog")
    at.radio[0].set_value("Product CSV").run()  # the page redraws its form for that layout, as in a browser
    at.file_uploader[0].set_value(("mine.csv", csv_path.read_bytes(), "text/csv"))
    at.text_input[0].set_value(str(folder))
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def test_a_bad_photo_in_an_app_import_is_one_problem(catalog, tmp_path, monkeypatch):
    from helpers import malformed_exif_jpeg, small_styles, texts

    monkeypatch.setenv("LOOKALIKE_DB", str(catalog.path))
    csv_path, folder = small_styles(tmp_path, 4)
    first = csv_path.read_text().splitlines()[1].split(",")[0]
    (folder / f"{first}.jpg").write_bytes(malformed_exif_jpeg())
    at = app_import(tmp_path, csv_path, folder)
    assert "4 items imported from 4 rows: 4 new, 0 updated, 0 unchanged; photos ok 3, not usable 1" in texts(at)


def test_a_busy_catalog_is_one_line_at_once_in_the_app(catalog, tmp_path, monkeypatch):
    import sqlite3
    import time

    from helpers import small_styles

    monkeypatch.setenv("LOOKALIKE_DB", str(catalog.path))
    csv_path, folder = small_styles(tmp_path, 2)
    writer = sqlite3.connect(catalog.path)
    writer.execute("BEGIN IMMEDIATE")  # another program writing
    try:
        start = time.perf_counter()
        at = app_import(tmp_path, csv_path, folder)
        assert time.perf_counter() - start < 20
        assert len(at.error) == 1 and "is busy" in at.error[0].value
    finally:
        writer.rollback()
        writer.close()
    assert catalog.execute("SELECT count(*) FROM items").fetchone()[0] == 0
