"""The curated list (core/curation/curated.py): verdicts act, steered refill, pins, hides, rules, reasons,
raw mode; the same list from curated_search (API, Search page) and curated_many (export)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from core.curation import decisions
from core.curation.curated import REASONS, curated_many, curated_search
from core.curation.labels import Query, add_label
from core.search.queries import SearchError, search
from core.search.space import open_space

from helpers import SHARED, needs_shared, opened_copy, run_here

METHOD = "efficientnet_lite0"


def first_item(db) -> str:
    return db.execute("SELECT item_id FROM embeddings WHERE method = ? ORDER BY item_id LIMIT 1", (METHOD,)).fetchone()[
        0
    ]


def model(db, item_id: str, k: int = 10) -> list[str]:
    return [h.item_id for h in search(open_space(db, METHOD), item_id=item_id, k=k).results]


def curated(db, item_id: str, k: int = 10, **steers):
    return curated_search(open_space(db, METHOD), item_id=item_id, k=k, **steers).results


def test_without_decisions_the_curated_list_is_the_models(embedded_demo):
    query = first_item(embedded_demo)
    hits = curated(embedded_demo, query)
    assert [h.item_id for h in hits] == model(embedded_demo, query)
    assert {h.reason for h in hits} == {"model"}
    raw = curated_search(open_space(embedded_demo, METHOD), item_id=query, k=10, raw=True)
    assert raw.raw and [h.item_id for h in raw.results] == model(embedded_demo, query)


def test_rejected_never_shipped_accepted_first_whichever_method_showed_them(embedded_demo):
    query = first_item(embedded_demo)
    top = model(embedded_demo, query, 30)
    add_label(embedded_demo, Query.item(query), top[0], METHOD, 1, False, "ana")
    add_label(embedded_demo, Query.item(query), top[2], "color_hist", 3, False, "ana")  # another method's list
    add_label(embedded_demo, Query.item(query), top[6], METHOD, 7, True, "ana")
    add_label(embedded_demo, Query.item(query), top[25], "hybrid", 4, True, "ana")  # far down the model's list
    add_label(embedded_demo, Query.item(query), top[1], METHOD, 2, True, "ana")
    add_label(embedded_demo, Query.item(query), top[1], METHOD, 2, False, "bo")  # the latest verdict counts
    hits = curated(embedded_demo, query)
    ids = [h.item_id for h in hits]
    assert len(ids) == 10 and not {top[0], top[1], top[2]} & set(ids)
    assert ids[:2] == [top[6], top[25]]  # accepted first, best first
    assert [h.reason for h in hits] == ["accepted"] * 2 + ["steered"] * 8
    assert hits[0].score >= hits[1].score
    raw = [h.item_id for h in curated_search(open_space(embedded_demo, METHOD), item_id=query, raw=True).results]
    assert raw == top[:10]  # raw: the model's list untouched, rejected included


def test_a_close_verdict_neither_accepts_nor_rejects_and_a_curators_verdict_counts(embedded_demo, monkeypatch):
    from core.settings import reload

    query = first_item(embedded_demo)
    top = model(embedded_demo, query, 30)
    add_label(embedded_demo, Query.item(query), top[1], METHOD, 2, False, "ana", grade="close")
    add_label(embedded_demo, Query.item(query), top[8], METHOD, 9, False, "ana", grade="close")
    hits = curated(embedded_demo, query)
    assert [h.item_id for h in hits] == top[:10] and {h.reason for h in hits} == {"model"}  # close: as the model
    add_label(embedded_demo, Query.item(query), top[4], METHOD, 5, True, "cy")  # the curator: good
    add_label(embedded_demo, Query.item(query), top[4], METHOD, 5, False, "bo")  # later, but not the curator
    assert top[4] not in [h.item_id for h in curated(embedded_demo, query)]  # no curator named: bo's wrong counts
    monkeypatch.setenv("LOOKALIKE_CURATOR", "cy")
    reload()
    try:
        hits = curated(embedded_demo, query)
    finally:
        monkeypatch.delenv("LOOKALIKE_CURATOR")
        reload()
    ids = [h.item_id for h in hits]
    assert ids[0] == top[4] and hits[0].reason == "accepted"  # the curator's good counts over bo's later wrong
    assert {top[1], top[8]} <= set(ids)  # close: kept where the model puts them, never dropped


def test_a_fusion_of_methods_is_the_models_list_and_cannot_be_steered(embedded_demo):
    query = first_item(embedded_demo)
    fused = {open_space(embedded_demo, METHOD): 0.7, open_space(embedded_demo, "color_hist"): 0.3}
    result = curated_search(fused, item_id=query, k=5)
    assert [h.item_id for h in result.results] == [h.item_id for h in search(fused, item_id=query, k=5).results]
    assert {h.reason for h in result.results} == {"model"} and any("fusion" in n for n in result.notes)
    with pytest.raises(SearchError, match="one method"):
        curated_search(fused, item_id=query, k=5, like=[result.results[0].item_id])


def test_the_steered_refill_moves_toward_the_accepted(embedded_demo):
    query = first_item(embedded_demo)
    top = model(embedded_demo, query, 150)
    liked = top[30]
    space = open_space(embedded_demo, METHOD)
    ids, matrix = space.stored_vectors(top)
    near = dict(zip(ids, matrix @ space.stored_vectors([liked])[1][0]))
    add_label(embedded_demo, Query.item(query), liked, METHOD, 31, True, "ana")
    for n in range(5):
        add_label(embedded_demo, Query.item(query), top[n], METHOD, n + 1, False, "ana")
    hits = curated(embedded_demo, query)
    refill = [h.item_id for h in hits if h.reason == "steered"]
    model_fill = [i for i in top if i != liked][5:14]
    assert np.mean([near[i] for i in refill]) > np.mean([near[i] for i in model_fill])


def test_like_and_unlike_steer_any_query_and_unknown_ids_are_refused(embedded_demo):
    query = first_item(embedded_demo)
    top = model(embedded_demo, query, 40)
    hits = curated(embedded_demo, query, like=[top[35]], unlike=[top[0], top[1]])
    ids = [h.item_id for h in hits]
    assert top[35] in ids and not {top[0], top[1]} & set(ids)
    assert {h.reason for h in hits} == {"steered"}
    with pytest.raises(SearchError, match="not a catalog item"):
        curated(embedded_demo, query, like=["no-such-item"])
    with pytest.raises(SearchError, match="leave out raw"):
        curated(embedded_demo, query, like=[top[3]], raw=True)
    text = curated_search(open_space(embedded_demo, "minilm"), text="watch", k=5, unlike=[top[0]])
    assert len(text.results) == 5 and top[0] not in {h.item_id for h in text.results}


def test_pins_take_their_places_whatever_the_model_thinks(embedded_demo):
    query = first_item(embedded_demo)
    top = model(embedded_demo, query, 200)
    far, farther = top[-1], top[-2]
    decisions.pin(embedded_demo, query, far, 3, "ana")
    decisions.pin(embedded_demo, query, farther, 1, "ana")
    decisions.pin(embedded_demo, query, top[5], 40, "ana")  # beyond k: not in the top 10, and not in its old place
    hits = curated(embedded_demo, query)
    ids = [h.item_id for h in hits]
    assert ids[0] == farther and ids[2] == far and top[5] not in ids
    assert [h.reason for h in hits][:3] == ["pinned", "model", "pinned"]
    assert [i for i in ids if i not in (far, farther)] == [i for i in top if i != top[5]][:8]
    decisions.unpin(embedded_demo, query, far, "ana")
    assert far not in [h.item_id for h in curated(embedded_demo, query)]
    with pytest.raises(decisions.CurationError, match="own list"):
        decisions.pin(embedded_demo, query, query, 1, "ana")


def test_hidden_items_are_in_no_curated_list_but_in_the_raw_one(embedded_demo, tmp_path):
    from core.curation.export import export_similar

    query = first_item(embedded_demo)
    top = model(embedded_demo, query)
    hidden = top[0]
    decisions.hide(embedded_demo, hidden, "ana")
    decisions.pin(embedded_demo, query, hidden, 1, "ana")  # a pin never brings a hidden item back
    add_label(embedded_demo, Query.item(query), hidden, METHOD, 1, True, "ana")  # nor does a verdict
    space = open_space(embedded_demo, METHOD)
    items = [i for (i,) in embedded_demo.execute("SELECT item_id FROM embeddings WHERE method = ?", (METHOD,))]
    lists = dict(curated_many(space, items, 10))
    assert hidden not in lists and all(hidden not in {h.item_id for h in hits} for hits in lists.values())
    assert all(len(hits) == 10 for hits in lists.values())
    assert hidden in model(embedded_demo, query)
    export_similar(space, 10, tmp_path / "out.csv", progress=False)
    with open(tmp_path / "out.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert hidden not in {r["item_id"] for r in rows} | {r["neighbour_id"] for r in rows}
    note = curated_search(space, item_id=hidden, k=3).notes
    assert any("is hidden" in n for n in note)
    decisions.unhide(embedded_demo, hidden, "ana")
    assert curated(embedded_demo, query)[0].item_id == hidden


def set_fields(db, rows: dict[str, dict]) -> None:
    with db.conn:
        for item_id, values in rows.items():
            for column, value in values.items():
                db.conn.execute(f"UPDATE items SET {column} = ? WHERE id = ?", (value, item_id))


def test_each_rule_filters_before_the_list_is_cut(embedded_demo):
    db = embedded_demo
    query = first_item(db)
    top = model(db, query, 60)
    gender = db.execute("SELECT gender FROM items WHERE id = ?", (query,)).fetchone()[0]

    decisions.set_rule(db, "same_gender", "on", "ana")
    hits = curated(db, query)
    genders = dict(db.execute("SELECT id, gender FROM items"))
    assert len(hits) == 10 and all(genders[h.item_id] in (gender, None) for h in hits)
    decisions.set_rule(db, "same_gender", "off", "ana")

    decisions.set_rule(db, "same_category", "on", "ana")
    categories = dict(db.execute("SELECT id, category FROM items"))
    assert all(categories[h.item_id] == categories[query] for h in curated(db, query, k=5))
    decisions.set_rule(db, "same_category", "off", "ana")

    set_fields(db, {i: {"stock": 0} for i in top[:4]} | {top[4]: {"stock": 3}})
    decisions.set_rule(db, "in_stock", "on", "ana")
    ids = [h.item_id for h in curated(db, query)]
    assert len(ids) == 10 and not set(top[:4]) & set(ids) and ids[0] == top[4]
    decisions.set_rule(db, "in_stock", "off", "ana")

    set_fields(db, {query: {"price": 100.0}} | {i: {"price": 1000.0} for i in top[:3]} | {top[3]: {"price": 140.0}})
    decisions.set_rule(db, "price_ratio", "1.5", "ana")
    ids = [h.item_id for h in curated(db, query)]
    assert not set(top[:3]) & set(ids) and ids[0] == top[3]  # items without a price pass
    decisions.set_rule(db, "price_ratio", "off", "ana")

    set_fields(db, {i: {"brand": "Acme"} for i in top[:6]})
    decisions.set_rule(db, "max_per_brand", "2", "ana")
    ids = [h.item_id for h in curated(db, query)]
    assert len(ids) == 10 and ids[:2] == top[:2] and not set(top[2:6]) & set(ids)
    decisions.set_rule(db, "max_per_brand", "off", "ana")

    space = open_space(db, METHOD)
    plain = curated(db, query)
    decisions.set_rule(db, "diversity", "0.7", "ana")
    diverse = curated(db, query)
    assert len(diverse) == 10 and diverse[0].item_id == plain[0].item_id

    def spread(hits) -> float:
        _, matrix = space.stored_vectors([h.item_id for h in hits])
        return float((matrix @ matrix.T)[np.triu_indices(len(hits), 1)].mean())

    assert spread(diverse) < spread(plain) - 0.02


def test_rules_refuse_bad_values_in_one_line(embedded_demo):
    from core.curation.rules import RuleError

    for name, value, said in (
        ("diversity", "2", "from 0 to 1"),
        ("price_ratio", "0.5", "at least 1"),
        ("max_per_brand", "x", "whole number"),
        ("same_gender", "maybe", "takes on"),
        ("colourful", "on", "unknown rule"),
    ):
        with pytest.raises(RuleError, match=said):
            decisions.set_rule(embedded_demo, name, value, "ana")
    with pytest.raises(decisions.CurationError, match="not set"):
        decisions.set_rule(embedded_demo, "in_stock", "off", "ana")


def test_curated_many_gives_each_list_as_curated_search_does(embedded_demo):
    db = embedded_demo
    space = open_space(db, METHOD)
    items = [i for (i,) in db.execute("SELECT item_id FROM embeddings WHERE method = ? ORDER BY 1", (METHOD,))][:40]
    for n, query in enumerate(items[:10]):
        top = model(db, query, 12)
        add_label(db, Query.item(query), top[n % 3], METHOD, 1, False, "ana")
        add_label(db, Query.item(query), top[11], METHOD, 12, True, "ana")
    decisions.pin(db, items[3], items[30], 2, "ana")
    decisions.hide(db, items[20], "ana")
    decisions.set_rule(db, "diversity", "0.3", "ana")
    many = dict(curated_many(space, items, 8))
    for query in items:
        if query == items[20]:
            assert query not in many
            continue
        single = curated_search(space, item_id=query, k=8).results
        assert [(h.item_id, h.reason) for h in many[query]] == [(h.item_id, h.reason) for h in single]
    assert set(REASONS) - {"model"} <= {h.reason for hits in many.values() for h in hits}


def test_cli_search_like_unlike_and_raw(embedded_demo):
    query = first_item(embedded_demo)
    top = model(embedded_demo, query, 30)
    add_label(embedded_demo, Query.item(query), top[0], METHOD, 1, False, "ana")
    db = str(embedded_demo.path)
    curated_run = run_here("--db", db, "search", "--item", query, "-k", "5", "--json")
    shown = [r["item_id"] for r in __import__("json").loads(curated_run.stdout)["results"]]
    assert curated_run.returncode == 0 and top[0] not in shown
    raw = run_here("--db", db, "search", "--item", query, "-k", "5", "--raw")
    assert raw.returncode == 0 and raw.stdout.splitlines()[1].split()[3] == top[0] and " model " in raw.stdout
    steered = run_here("--db", db, "search", "--item", query, "-k", "5", "--like", top[20], "--unlike", top[1])
    assert steered.returncode == 0 and top[1] not in steered.stdout and top[20] in steered.stdout
    assert "steered" in steered.stdout
    bad = run_here("--db", db, "search", "--item", query, "--like", "nope")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not a catalog item" in bad.stderr


@pytest.fixture(scope="module")
def fashion_path(tmp_path_factory):
    """600 of the labelled photos, imported and embedded with the default method once for this module."""
    from core.catalog.db import open_catalog
    from core.catalog.importers import import_csv
    from core.engines.embed import embed_catalog

    folder = tmp_path_factory.mktemp("curated")
    source = SHARED / "fashion-products"
    with open(source / "styles.csv", newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    with open(folder / "styles.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([lines[0], *lines[-600:]])  # the last 600: photos no tuning used
    db = open_catalog(folder / "fashion.db")
    import_csv(db, folder / "styles.csv", source / "images", progress=False)
    embed_catalog(db, METHOD, progress=False)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    return folder / "fashion.db"


@needs_shared
def test_real_photos_verdicts_from_type_and_colour_reach_export_api_and_search_alike(
    fashion_path, tmp_path, monkeypatch
):
    """The whole flow on photos never tuned on: the top 10 of 60 items judged by their true type and colour;
    the curated lists ship no rejected item, lead with the accepted, beat the model's list, and export,
    the API and the Search page give the same lists."""
    from fastapi.testclient import TestClient

    from core.api.app import create_app
    from core.curation.evaluate import joint_values
    from core.curation.export import export_similar

    from helpers import page

    db = next(opened_copy(fashion_path, tmp_path / "fashion.db"))
    ids = [i for (i,) in db.execute("SELECT id FROM items ORDER BY id")]
    truth = dict(zip(ids, joint_values(db, ids, "category,colour")))
    queries = [i for i in ids if truth[i] is not None][::10][:60]
    for query in queries:
        for rank, candidate in enumerate(model(db, query), start=1):
            add_label(db, Query.item(query), candidate, METHOD, rank, truth[candidate] == truth[query], "sim")
    hidden = model(db, queries[1])[-1]
    decisions.hide(db, hidden, "ana")
    decisions.pin(db, queries[0], ids[-1], 2, "ana")
    space = open_space(db, METHOD)
    lists = {q: curated_search(space, item_id=q, k=10).results for q in queries}

    def precision(found: list[str], query: str) -> float:
        return float(np.mean([truth[i] == truth[query] for i in found]))

    for query, hits in lists.items():
        rejected = {c for c in model(db, query) if truth[c] != truth[query]}
        assert not rejected & {h.item_id for h in hits if h.reason != "pinned"} and hidden not in {
            h.item_id for h in hits
        }
        reasons = [h.reason for h in hits if h.reason != "pinned"]
        assert reasons == sorted(reasons, key=lambda r: r != "accepted")  # accepted first
    before = np.mean([precision(model(db, q), q) for q in queries])
    after = np.mean([precision([h.item_id for h in hits], q) for q, hits in lists.items()])
    ranked = {q: model(db, q, 30) for q in queries}
    # drop-and-fill: the accepted of the top 10, then the model's next ranks
    dropped = np.mean(
        [precision(([c for c in ranked[q][:10] if truth[c] == truth[q]] + ranked[q][10:])[:10], q) for q in queries]
    )
    assert after >= before + 0.04 and after > dropped, (before, dropped, after)  # measured: 0.133, -, 0.193

    export_similar(space, 10, tmp_path / "out.csv", progress=False)
    with open(tmp_path / "out.csv", encoding="utf-8-sig", newline="") as handle:
        exported: dict[str, list[tuple[str, str]]] = {}
        for row in csv.DictReader(handle):
            exported.setdefault(row["item_id"], []).append((row["neighbour_id"], row["reason"]))
    with TestClient(create_app(db.path, keys=())) as client:
        for query in queries[:15]:
            expected = [(h.item_id, h.reason) for h in lists[query]]
            reply = client.get(f"/items/{query}/similar", params={"k": 10}).json()["results"]
            assert [(r["item_id"], r["reason"]) for r in reply] == expected == exported[query]
    monkeypatch.setenv("LOOKALIKE_DB", str(db.path))
    at = page("search")
    at.selectbox[0].set_value(queries[0]).run()
    shown = at.session_state["search_results"]["hits"]
    assert [(h.item_id, h.reason) for h in shown] == [(h.item_id, h.reason) for h in lists[queries[0]]]
    db.conn.close()
