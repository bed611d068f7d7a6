"""Search on the real demo catalog: exact and Annoy agree, filters, photo/text queries, fusion, chi-square, CLI."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest
from PIL import Image

from core.catalog.filters import matching_item_ids, parse_filters
from core.catalog.images import MAX_UPLOAD_BYTES
from core.catalog.vectors import get_vector, load_matrix
from core.cli import main
from core.search import backends
from core.search.queries import SearchError, search, search_many
from core.search.space import open_space

from helpers import DEMO, SHARED, needs_shared

METHOD = "efficientnet_lite0"


def items(db, n: int, offset: int = 0) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            "SELECT item_id FROM embeddings WHERE method = ? ORDER BY item_id LIMIT ? OFFSET ?", (METHOD, n, offset)
        )
    ]


def same_up_to_ties(a, b, tol: float = 1e-5) -> bool:
    """Equal ranked lists, allowing swaps among items whose scores tie within tol."""
    if len(a) != len(b) or any(abs(x.score - y.score) > tol for x, y in zip(a, b)):
        return False
    last = b[-1].score if b else 0
    firm = lambda hits: {h.item_id for h in hits if h.score > last + tol}  # noqa: E731
    return firm(a) == firm(b)


def with_limit(monkeypatch, limit: int, fn):
    monkeypatch.setattr(backends, "EXACT_LIMIT", limit)
    return fn()


@pytest.mark.parametrize("method", ["efficientnet_lite0", "minilm", "color_hist"])
def test_exact_and_annoy_paths_agree_up_to_ties(embedded_demo, monkeypatch, method):
    queries = items(embedded_demo, 12, offset=40)
    for q in queries:

        def ranked(q=q):
            return search(open_space(embedded_demo, method), item_id=q, k=10).results

        exact = with_limit(monkeypatch, 20_000, ranked)
        annoy = with_limit(monkeypatch, 0, ranked)
        assert same_up_to_ties(exact, annoy), q
        assert q not in {h.item_id for h in annoy}
    _, matrix = load_matrix(embedded_demo, method)
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    qv = get_vector(embedded_demo, method, queries[-1])
    expected = np.sort(unit @ (qv / np.linalg.norm(qv)))[::-1][1:11]  # numpy, independently
    assert [h.score for h in exact] == pytest.approx(expected.tolist(), abs=1e-5)


def test_item_query_ranks_by_similarity_with_display_fields(embedded_demo):
    q = items(embedded_demo, 1)[0]
    result = search(open_space(embedded_demo, METHOD), item_id=q, k=10)
    scores = [h.score for h in result.results]
    assert len(result.results) == 10 and q not in [h.item_id for h in result.results]
    assert scores == sorted(scores, reverse=True) and [h.rank for h in result.results] == list(range(1, 11))
    assert all(h.title and h.image_path and h.category and h.gender and h.method == METHOD for h in result.results)
    category = embedded_demo["items"].get(q)["category"]
    assert sum(h.category == category for h in result.results) >= 3  # 12 of 300 share it: random gives ~0.4
    assert result.as_dict()["query"] == {
        "item_id": q,
        "text": None,
        "image_sha256": None,
        "method": METHOD,
        "k": 10,
        "filters": {},
    }


@pytest.mark.parametrize("limit", [20_000, 60, 0])  # exact; filtered subset read from SQL; Annoy widening
def test_filtered_searches_return_k_matching_items_on_every_path(embedded_demo, monkeypatch, limit):
    monkeypatch.setattr(backends, "SUBSET_EXACT_LIMIT", limit)
    q = items(embedded_demo, 1)[0]
    filters = parse_filters(["gender=women", "category=Handbags|heels"])
    wanted = set(matching_item_ids(embedded_demo, filters))
    assert 10 < len(wanted) < 60
    reference = with_limit(
        monkeypatch, 20_000, lambda: search(open_space(embedded_demo, METHOD), item_id=q, k=10, filters=filters).results
    )
    hits = with_limit(
        monkeypatch,
        min(limit, 1),
        lambda: search(open_space(embedded_demo, METHOD), item_id=q, k=10, filters=filters).results,
    )
    assert len(hits) == 10 and {h.item_id for h in hits} <= wanted
    assert all(h.gender == "Women" and h.category in ("Handbags", "Heels") for h in hits)
    assert same_up_to_ties(reference, hits)
    few = parse_filters(["category=Heels", "gender=Women"])
    n = len(matching_item_ids(embedded_demo, few))
    assert (
        len(
            with_limit(
                monkeypatch,
                min(limit, 1),
                lambda: search(open_space(embedded_demo, METHOD), item_id=q, k=50, filters=few).results,
            )
        )
        == n
    )


def test_price_stock_brand_filters_and_unicode_case(embedded_demo):
    ids = [r[0] for r in embedded_demo.execute("SELECT id FROM items ORDER BY id")]
    with embedded_demo.conn:
        for n, item_id in enumerate(ids):
            embedded_demo.conn.execute(
                "UPDATE items SET price = ?, stock = ?, brand = ? WHERE id = ?",
                (n * 10, n % 3, "ÉCRU Studio" if n % 2 else "Other", item_id),
            )
    query = ids[1]  # brand ÉCRU Studio
    filters = parse_filters(["price_min=500", "price_max=2000", "in_stock=yes", "exclude_same_brand=yes"])
    hits = search(open_space(embedded_demo, METHOD), item_id=query, k=10, filters=filters).results
    stocks = dict(embedded_demo.execute("SELECT id, stock FROM items"))
    assert len(hits) == 10 and all(
        500 <= h.price <= 2000 and h.brand == "Other" and stocks[h.item_id] > 0 for h in hits
    )
    mine = search(
        open_space(embedded_demo, METHOD), item_id=ids[0], k=10, filters=parse_filters(["brand=écru studio"])
    ).results
    assert len(mine) == 10 and {h.brand for h in mine} == {"ÉCRU Studio"}  # SQLite lower() alone misses É
    assert (
        search(open_space(embedded_demo, METHOD), item_id=query, k=5, filters=parse_filters(["brand=nobody"])).results
        == []
    )


def test_a_search_that_filters_everything_out_says_which_filter_did(embedded_demo):
    women = embedded_demo.execute("SELECT count(*) FROM items WHERE gender = 'Women'").fetchone()[0]
    result = search(
        open_space(embedded_demo, METHOD),
        item_id="10129",
        k=10,
        filters=parse_filters(["gender=women", "price_max=500"]),
    )
    assert result.results == [] and result.notes == [
        f"0 of 10 results: the filters leave 0 of 300 items: gender=women leaves {women}, "
        "then price_max=500 leaves 0 (no item has a price)"
    ]
    assert (
        search(open_space(embedded_demo, METHOD), item_id="10129", k=10, filters=parse_filters(["gender=women"])).notes
        == []
    )


def test_filter_parsing():
    assert parse_filters(
        ["gender=Women", "price_max=$1,500", "category=Heels", "category=Flats|Sandals", "in_stock=yes", "color=Red"]
    ) == {
        "gender": ["Women"],
        "price_max": 1500.0,
        "category": ["Heels", "Flats", "Sandals"],
        "in_stock": True,
        "colour": ["Red"],
    }
    for bad, message in [
        ("size=M", "unknown filter 'size'"),
        ("price_max=cheap", "needs a number"),
        ("in_stock=maybe", "yes/no"),
        ("gender", "not key=value"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_filters([bad])


def test_an_uploaded_catalog_photo_finds_its_own_item(embedded_demo):
    q = items(embedded_demo, 1, offset=100)[0]
    path = embedded_demo.execute("SELECT path FROM images WHERE item_id = ?", (q,)).fetchone()[0]
    photo = open(path, "rb").read()
    result = search(open_space(embedded_demo, METHOD), image=photo, k=5)
    assert result.results[0].item_id == q and result.results[0].score == pytest.approx(1.0, abs=1e-4)
    assert len(result.query["image_sha256"]) == 64 and result.query["item_id"] is None
    buffer = io.BytesIO()  # the same photo re-encoded smaller
    Image.open(path).convert("RGB").resize((150, 200)).save(buffer, "WEBP", quality=70)
    assert search(open_space(embedded_demo, METHOD), image=buffer.getvalue(), k=3).results[0].item_id == q


@needs_shared
def test_shopper_photos_in_every_format(embedded_demo):
    photos = sorted((SHARED / "query-photos").glob("photo-*"))
    assert {p.suffix for p in photos} >= {".jpg", ".webp", ".avif"}
    for photo in [p for p in photos if p.suffix in (".jpg", ".avif")][:3] + photos[-2:]:
        result = search(open_space(embedded_demo, METHOD), image=photo.read_bytes(), k=5)
        assert len(result.results) == 5 and 0 < result.results[0].score <= 1


def test_text_queries(embedded_demo):
    hits = search(open_space(embedded_demo, "minilm"), text="wrist watch", k=5).results
    assert sum(h.category == "Watches" for h in hits) >= 4
    with pytest.raises(SearchError, match="cannot read text"):
        search(open_space(embedded_demo, METHOD), text="red dress")


def test_bad_queries_say_what_is_wrong(embedded_demo):
    cases = [
        (dict(item_id="nope"), "no catalog item"),
        (dict(image=b"\xff" * (MAX_UPLOAD_BYTES + 1)), "too large"),
        (dict(image=b"not a photo"), "cannot read the photo"),
        (dict(text="  "), "empty"),
        (dict(), "exactly one"),
        (dict(item_id="x", text="y"), "exactly one"),
    ]
    for query, message in cases:
        with pytest.raises(SearchError, match=message):
            search(open_space(embedded_demo, "minilm" if "text" in query else METHOD), **query)
    with pytest.raises(SearchError, match="unknown method"):
        search(open_space(embedded_demo, "no_such_method"), item_id="x")
    with pytest.raises(SearchError, match="chi-square needs histogram"):
        search(open_space(embedded_demo, METHOD), item_id=items(embedded_demo, 1)[0], distance="chi2")
    with pytest.raises(SearchError, match="positive weight"):
        search({open_space(embedded_demo, METHOD): 0}, item_id=items(embedded_demo, 1)[0])


def test_hybrid_fusion_is_the_weighted_mean_of_cosines(embedded_demo, monkeypatch):
    q = items(embedded_demo, 1, offset=7)[0]
    deep = search(open_space(embedded_demo, METHOD), item_id=q, k=10).results
    fused = search(
        {open_space(embedded_demo, METHOD): 0.7, open_space(embedded_demo, "color_hist"): 0.3}, item_id=q, k=10
    ).results
    assert (
        len(fused) == 10 and fused[0].method == f"0.7*{METHOD}+0.3*color_hist" and q not in [h.item_id for h in fused]
    )
    assert [
        h.item_id
        for h in search(
            {open_space(embedded_demo, METHOD): 1.0, open_space(embedded_demo, "color_hist"): 0.0}, item_id=q, k=10
        ).results
    ] == [h.item_id for h in deep]

    def cos(method, a, b):
        x, y = get_vector(embedded_demo, method, a), get_vector(embedded_demo, method, b)
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    for hit in fused:
        assert hit.score == pytest.approx(
            0.7 * cos(METHOD, q, hit.item_id) + 0.3 * cos("color_hist", q, hit.item_id), abs=1e-4
        )
    colour_heavy = search(
        {open_space(embedded_demo, METHOD): 0.1, open_space(embedded_demo, "color_hist"): 0.9}, item_id=q, k=10
    ).results
    assert [h.item_id for h in colour_heavy] != [h.item_id for h in fused]
    annoy = with_limit(
        monkeypatch,
        0,
        lambda: (
            search(
                {open_space(embedded_demo, METHOD): 0.7, open_space(embedded_demo, "color_hist"): 0.3}, item_id=q, k=10
            ).results
        ),
    )
    assert same_up_to_ties(fused, annoy)


@pytest.mark.parametrize("limit", [20_000, 0])
def test_chi_square_ranking_is_exact(embedded_demo, monkeypatch, limit):
    from core.methods.distances import chi2_distances

    q = items(embedded_demo, 1, offset=3)[0]
    hits = with_limit(
        monkeypatch,
        limit,
        lambda: search(open_space(embedded_demo, "color_hist"), item_id=q, k=10, distance="chi2").results,
    )
    ids, matrix = load_matrix(embedded_demo, "color_hist")
    distances = chi2_distances(get_vector(embedded_demo, "color_hist", q), matrix)
    order = [i for i in np.argsort(distances, kind="stable") if ids[i] != q][:10]
    assert [h.score for h in hits] == pytest.approx([-distances[i] for i in order], abs=1e-5)
    assert {h.item_id for h in hits} == {ids[i] for i in order}


@pytest.mark.parametrize("limit", [20_000, 0])
def test_search_many_matches_single_searches(embedded_demo, monkeypatch, limit):
    queries = items(embedded_demo, 6, offset=200)
    with embedded_demo.conn:
        embedded_demo.conn.execute("UPDATE items SET brand = CASE WHEN rowid % 2 THEN 'A' ELSE 'B' END")
    filters = parse_filters(["gender=Men", "exclude_same_brand=yes"])
    monkeypatch.setattr(backends, "EXACT_LIMIT", limit)
    many = dict(search_many(open_space(embedded_demo, METHOD), queries, 5, filters=filters))
    assert set(many) == set(queries)
    for q in queries:
        single = search(open_space(embedded_demo, METHOD), item_id=q, k=5, filters=filters).results
        assert same_up_to_ties(many[q], single)
        brand = embedded_demo["items"].get(q)["brand"]
        assert all(embedded_demo["items"].get(h.item_id)["brand"] != brand for h in many[q])


def run_cli(*argv) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def test_cli_index_and_search_json(embedded_demo, tmp_path):
    db = str(tmp_path / "demo.db")
    code, out = run_cli("index", "--db", db, "--method", METHOD, "--trees", "7", "--json")
    assert code == 0 and json.loads(out)["trees"] == 7
    q = items(embedded_demo, 1)[0]
    code, out = run_cli(
        "search",
        "--db",
        db,
        "--method",
        METHOD,
        "--item",
        q,
        "-k",
        "4",
        "--json",
        "--filter",
        "gender=men",
        "--filter",
        "category=Watches|Tshirts",
    )
    payload = json.loads(out)
    assert code == 0 and payload["query"]["filters"] == {"gender": ["men"], "category": ["Watches", "Tshirts"]}
    assert [r["rank"] for r in payload["results"]] == [1, 2, 3, 4]
    assert all(
        r["gender"] == "Men" and r["category"] in ("Watches", "Tshirts") and r["score"] > 0 for r in payload["results"]
    )
    code, out = run_cli("search", "--db", db, "--method", f"{METHOD}=0.7,color_hist=0.3", "--item", q, "--json")
    assert code == 0 and len(json.loads(out)["results"]) == 10
    photo = sorted((DEMO / "images").iterdir())[5]
    code, out = run_cli("search", "--db", db, "--image", str(photo), "--json", "-k", "1")
    assert code == 0 and json.loads(out)["results"][0]["item_id"] == photo.stem
    assert run_cli("search", "--db", db, "--item", q, "--filter", "size=M")[0] == 2
    code, out = run_cli("search", "--db", db, "--item", q, "-k", "3")
    header, *rows = out.splitlines()
    assert code == 0 and header.split() == ["#", "score", "why", "item", "category", "title"] and len(rows) == 3
    assert rows[0].split()[0] == "1"


@pytest.mark.parametrize(
    "weights, reason",
    [
        ("efficientnet_lite0=1e308,color_hist=1e308", "sum overflows"),
        ("efficientnet_lite0=1e300,color_hist=1e-300", "too small beside the others"),
        ("efficientnet_lite0=1,color_hist=-0.5", "at least 0"),
    ],
)
def test_weights_that_overflow_or_vanish_are_refused_everywhere(embedded_demo, weights, reason):
    """LOOKALIKE_HYBRID, fusion (command line and library) and tune's base weights: one line, nothing stored."""
    from core.curation.tune_setup import TuneError, fusion_weights

    from helpers import one_line, run_cli, run_here

    db = str(embedded_demo.path)
    stored = "SELECT item_id, version, vector FROM embeddings WHERE method = 'hybrid' ORDER BY item_id"
    before = embedded_demo.execute(stored).fetchall()
    line = one_line(run_cli("embed", "--method", "hybrid", "--db", db, env={"LOOKALIKE_HYBRID": weights}))
    assert "LOOKALIKE_HYBRID" in line and reason in line
    assert embedded_demo.execute(stored).fetchall() == before
    assert reason in one_line(run_here("search", "--item", "10129", "--method", weights, "--db", db))
    assert reason in one_line(run_here("tune", "--name", "t", "--base", weights, "--target", "category", "--db", db))
    parts = dict(pair.split("=") for pair in weights.split(","))
    spaces = {open_space(embedded_demo, name): float(w) for name, w in parts.items()}
    with pytest.raises(SearchError, match=reason):
        search(spaces, item_id="10129", k=3)
    with pytest.raises(TuneError, match=reason):
        fusion_weights(list(parts), [float(w) for w in parts.values()])


def test_a_reader_that_stops_early_ends_the_command_quietly(embedded_demo):
    """`search --json | head`: no Broken pipe error, no traceback, exit 141 like any program a pipe stops."""
    import os
    import subprocess
    import sys

    from helpers import ROOT

    command = [sys.executable, "-m", "core", "search", "--item", "10129", "-k", "200", "--json"]
    piped = subprocess.Popen(
        [*command, "--db", str(embedded_demo.path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    assert piped.stdout.readline().strip() == b"{"
    piped.stdout.close()
    assert piped.wait(120) == 141 and piped.stderr.read() == b""


def test_search_keeps_an_item_whose_photo_was_deleted_and_marks_it(catalog, deleted_photos):
    from pathlib import Path

    from core.search.queries import search

    query = catalog.execute("SELECT id FROM items ORDER BY id DESC").fetchone()[0]
    hits = {h.item_id: h for h in search(open_space(catalog, "color_hist"), item_id=query, k=5).results}
    assert len(hits) == 5 and set(deleted_photos) <= set(hits)
    for item_id, hit in hits.items():
        assert hit.photo_missing == (item_id in deleted_photos)
        assert hit.image_path and Path(hit.image_path).name == f"{item_id}.jpg"  # kept: says what to restore
        assert Path(hit.image_path).is_file() != hit.photo_missing


@pytest.mark.parametrize(
    "value, reason",
    [
        ("efficientnet_lite0=nan,color_hist=1", "finite number"),
        ("efficientnet_lite0=inf,color_hist=1", "finite number"),
        ("garbage", "is not METHOD=WEIGHT"),
        ("efficientnet_lite0=0.5,nosuch=0.5", "nosuch is not an image method"),
        ("efficientnet_lite0=1,minilm=1", "minilm is not an image method"),
        ("color_hist=0,efficientnet_lite0=0", "above 0"),
    ],
)
def test_a_bad_hybrid_setting_is_one_line_naming_the_variable(embedded_demo, value, reason):
    from helpers import one_line, run_cli

    env = {"LOOKALIKE_HYBRID": value}
    db = str(embedded_demo.path)
    listed = run_cli("methods", "--db", db, env=env)
    assert listed.returncode == 0 and "LOOKALIKE_HYBRID" in listed.stdout and reason in listed.stdout
    found = run_cli("search", "--item", "10129", "--method", "color_hist", "-k", "3", "--db", db, env=env)
    assert found.returncode == 0 and len(found.stdout.splitlines()) == 1 + 3, found.stderr  # the header, 3 rows
    stored = "SELECT item_id, version, vector FROM embeddings WHERE method = 'hybrid' ORDER BY item_id"
    before = embedded_demo.execute(stored).fetchall()
    assert before, "the demo fixture embeds hybrid: a bad setting must leave those vectors as they are"
    line = one_line(run_cli("embed", "--method", "hybrid", "--db", db, env=env))
    assert "LOOKALIKE_HYBRID" in line and reason in line
    assert embedded_demo.execute(stored).fetchall() == before


def test_fusion_weights_on_the_command_line_are_checked_too(embedded_demo):
    from helpers import one_line, run_cli

    line = one_line(
        run_cli(
            "search",
            "--item",
            "10129",
            "--method",
            "efficientnet_lite0=nan,color_hist=1",
            "--db",
            str(embedded_demo.path),
        )
    )
    assert "finite number" in line


def test_search_finds_an_item_by_another_spelling_of_its_id(embedded_demo):
    from core.search.queries import search

    hits = search(open_space(embedded_demo, "color_hist"), item_id="\u00a010129\u200b", k=3).results
    assert len(hits) == 3 and "10129" not in [h.item_id for h in hits]
