"""`python -m core tune` on the real demo slice, and the tuned method used like any other method.

The first tune runs as a real process, as a user runs it; the other commands run in this process
(helpers.run_here: the same command line, without a new Python's imports each time)."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from dataclasses import asdict

import numpy as np
import pytest

from core.catalog.db import open_catalog
from core.catalog.vectors import load_matrix
from core.curation import tuning
from core.curation.evaluate import evaluate
from core.curation.labels import judge_by_attributes
from core.methods.heads import head_vectors
from core.search.index import problem, read_manifest
from core.search.space import open_space

from helpers import DEMO, run_cli, run_here

NAME = "typecol"
BASES = "efficientnet_lite0,color_hist"
FAST = ("--epochs", "15", "--dim", "16")  # a few seconds on the 300 demo items


def tune_cli(db, *extra: str, name: str = NAME, base: str = BASES, run=run_here):
    return run("tune", "--db", str(db), "--name", name, "--base", base, *FAST, *extra)


def cli(db, *args: str):
    return run_here(*args, "--db", str(db))


def saved(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM tuned_methods").fetchone()[0]


@pytest.fixture(scope="module")
def first_tune(embedded_demo_path, tmp_path_factory):
    """The embedded demo slice with NAME tuned once (forced) on type and colour, and that command's run."""
    path = tmp_path_factory.mktemp("tuned") / "demo.db"
    shutil.copy(embedded_demo_path, path)
    done = tune_cli(path, "--target", "category,colour", "--force", run=run_cli)
    assert done.returncode == 0, done.stderr
    return path, done


@pytest.fixture
def tuned(first_tune, tmp_path):
    path = tmp_path / "demo.db"
    shutil.copy(first_tune[0], path)
    return path


def test_tune_prints_base_and_tuned_per_target_and_jointly_and_saves(first_tune):
    db, done = first_tune
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{NAME} over efficientnet_lite0 + color_hist: ") and "held out" in lines[0]
    assert "base" in lines[1] and "tuned" in lines[1]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:5]}
    assert set(rows) == {"category", "colour", "category,colour"}
    assert all(len(cells) == 4 and all(0 <= float(c) <= 1 for c in cells) for cells in rows.values())
    assert lines[-1] == f"saved as version 1; next: python -m core embed --method {NAME}"
    assert saved(db) == 1


def test_tune_json_is_the_result_and_a_worse_head_is_not_saved(tuned):
    done = tune_cli(tuned, "--target", "category,colour", "--json", "--force")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == set(tuning.TuneResult("n", [], [], [], False).as_dict())
    assert result["saved"] and result["version"] == 2 and result["bases"] == BASES.split(",")
    assert result["weights"] == [0.5, 0.5] and result["targets"] == ["category", "colour"] and not result["uses_labels"]
    assert set(result["metrics"]) == {"category", "colour", "category,colour"}
    assert set(result["metrics"]["category"]) == {
        "base_held_out",
        "base_catalog",
        "tuned_held_out",
        "tuned_catalog",
        "bases",
    }
    assert set(result["signal_weights"]) == {"item", "photo"}
    assert result["items_trained"] + result["items_validated"] <= 300 and result["items_validated"] > 30
    worse = run_here(
        "tune",
        "--db",
        str(tuned),
        "--name",
        NAME,
        "--base",
        BASES,
        "--target",
        "category,colour",
        "--dim",
        "1",
        "--epochs",
        "2",
        "--head",
        "only",
    )  # one dimension alone cannot rank as well as its base
    assert worse.returncode == 1, worse.stderr
    assert worse.stdout.splitlines()[-1].startswith("not saved, worse than its base on held-out items: ")
    assert saved(tuned) == 2


def test_votes_and_catalog_fields_are_signals_unless_turned_off(tuned):
    default = json.loads(tune_cli(tuned, "--target", "category,colour", "--json", "--force").stdout)
    assert {"votes", "same_gender"} <= set(default["signal_weights"]["item"])  # the demo listings have a gender
    off = tune_cli(tuned, "--target", "category,colour", "--json", "--force", "--votes", "0", "--no-fields")
    signals = set(json.loads(off.stdout)["signal_weights"]["item"])
    assert signals <= {"efficientnet_lite0", "color_hist", "head"}
    refused = tune_cli(tuned, "--target", "category", "--votes", "-1")
    assert refused.returncode == 2 and "needs a whole number of at least 0, got -1" in refused.stderr


def test_methods_lists_the_tuned_method_with_its_bases_and_training(tuned):
    rows = {m["name"]: m for m in json.loads(cli(tuned, "methods", "--json").stdout)}
    row = rows[NAME]
    assert {"name", "kind", "available", "reason", "device"} <= set(row)
    assert row["kind"] == "image" and row["available"] and row["reason"] is None
    assert row["bases"] == ["efficientnet_lite0", "color_hist"]
    assert row["training"]["version"] == 1 and row["training"]["targets"] == ["category", "colour"]
    assert row["training"]["uses_labels"] is False and "category,colour" in row["training"]["metrics"]
    assert row["training"]["created_at"]
    assert "bases" not in rows["efficientnet_lite0"]
    assert NAME not in {
        m["name"] for m in json.loads(run_here("methods", "--json", "--db", str(tuned.parent / "other.db")).stdout)
    }


def test_the_tuned_method_embeds_indexes_searches_evaluates_and_exports(tuned, tmp_path):
    done = cli(tuned, "embed", "--method", NAME, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["embedded"] == 300 and report["failed"] == 0 and report["version"].startswith("tuned-1-")
    db = open_catalog(tuned)
    ids, stored = load_matrix(db, NAME)
    ids_t, expected, missing = head_vectors(db, NAME)
    assert ids == ids_t and not missing and stored.shape[0] == 300
    assert np.allclose(stored, expected, atol=1e-6)

    index = json.loads(cli(tuned, "index", "--method", NAME, "--json").stdout)
    assert index["items"] == 300 and index["dim"] == stored.shape[1] and index["metric"] == "angular"

    query = ids[0]
    found = json.loads(
        cli(tuned, "search", "--method", NAME, "--item", query, "-k", "5", "--json", "--filter", "gender=Men").stdout
    )["results"]
    men = {i for (i,) in db.execute("SELECT id FROM items WHERE gender = 'Men'")}
    sims = stored @ stored[0]
    best = [ids[n] for n in np.argsort(-sims) if ids[n] in men and ids[n] != query][:5]
    assert [h["item_id"] for h in found] == best and {h["method"] for h in found} == {NAME}

    photo = db.execute("SELECT path FROM images WHERE item_id = ?", [query]).fetchone()[0]
    by_photo = json.loads(cli(tuned, "search", "--method", NAME, "--image", photo, "-k", "3", "--json").stdout)
    assert by_photo["results"][0]["item_id"] == query

    judged = evaluate(open_space(db, NAME), "category,colour")
    done = cli(tuned, "evaluate", "--method", NAME, "--attribute", "category,colour", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == asdict(judged) and judged.queries == 300

    out = tmp_path / "similar.csv"
    assert cli(tuned, "export", "--method", NAME, "-k", "3", "--out", str(out)).returncode == 0
    with open(out, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 900 and {r["method"] for r in rows} == {NAME}

    count = judge_by_attributes(db, ids, stored, list(range(0, 300, 10)), "category,colour", "sim", NAME)
    db.conn.close()
    precision = json.loads(cli(tuned, "precision", "--method", NAME, "--json").stdout)["methods"]
    assert precision[0]["method"] == NAME and precision[0]["labels"] == count == 300


def test_embedding_decodes_no_photo_and_names_the_missing_base_vectors(tuned):
    with sqlite3.connect(tuned) as conn:
        conn.execute("UPDATE images SET path = '/nowhere/' || item_id || '.jpg'")  # no photo can be read
        gone = [
            i
            for (i,) in conn.execute(
                "SELECT item_id FROM embeddings WHERE method = 'color_hist' ORDER BY item_id LIMIT 4"
            )
        ]
        conn.execute("DELETE FROM embeddings WHERE method = 'color_hist' AND item_id IN (?, ?, ?, ?)", gone)
    done = cli(tuned, "embed", "--method", NAME)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{NAME}: 296 embedded, 4 skipped (no current base vectors)")
    assert (
        "4 items lack a vector of their current photo from color_hist (4); embed the bases first: "
        "python -m core embed --method color_hist" in done.stderr
    )
    with sqlite3.connect(tuned) as conn:
        assert conn.execute("SELECT count(*) FROM embeddings WHERE method = ?", [NAME]).fetchone()[0] == 296
        assert conn.execute("SELECT count(*) FROM embedding_failures").fetchone()[0] == 0


def test_retuning_makes_the_vectors_and_index_stale(tuned):
    assert cli(tuned, "embed", "--method", NAME).returncode == 0
    assert cli(tuned, "index", "--method", NAME).returncode == 0
    query = "10129"
    retuned = tune_cli(tuned, "--target", "category", "--force", "--dim", "8", "--head", "only")
    changed = f"{NAME} changed since its vectors were made: searches use the old ones until it is embedded again"
    assert retuned.returncode == 0 and changed in retuned.stdout  # said at tune time
    by_item = cli(tuned, "search", "--method", NAME, "--item", query)
    assert by_item.returncode == 0 and len(by_item.stdout.splitlines()) == 1 + 10 and changed in by_item.stderr
    state = [line for line in cli(tuned, "methods").stdout.splitlines() if line.startswith(NAME)]
    assert state and state[0].split()[2] == "changed"
    by_photo = cli(tuned, "search", "--method", NAME, "--image", str(DEMO / "images" / f"{query}.jpg"))
    assert by_photo.returncode == 0 and changed in by_photo.stderr  # one rule: the old head reads the photo
    again = json.loads(cli(tuned, "embed", "--method", NAME, "--json").stdout)
    assert again["embedded"] == 300 and again["version"].startswith("tuned-2-")
    db = open_catalog(tuned)
    assert problem(db, NAME, again["version"]) == "the method changed since the index was built"
    found = json.loads(
        cli(tuned, "search", "--method", NAME, "--image", str(DEMO / "images" / f"{query}.jpg"), "--json").stdout
    )["results"]
    assert found[0]["item_id"] == query
    assert json.loads(cli(tuned, "index", "--method", NAME, "--json").stdout)["dim"] == 8
    assert problem(db, NAME) is None and read_manifest(db, NAME).versions == [again["version"]]


@pytest.mark.parametrize(
    "name, base, extra, message",
    [
        (
            NAME,
            "efficientnet_lite0,autoencoder",
            ("--target", "category"),
            "no vectors for autoencoder yet; run `python -m core embed --method autoencoder`",
        ),
        (NAME, BASES, ("--target", "colour"), "target 'colour' has 1 distinct value(s)"),
        (NAME, BASES, ("--labels",), "no relevance labels between training items with vectors"),
        ("color_hist", BASES, ("--target", "category"), "'color_hist' is a built-in method"),
        (NAME, "minilm", ("--target", "category"), "name at least one image method among the bases"),
        (NAME, "efficientnet_lite0,nosuch", ("--target", "category"), "base 'nosuch' is not a built-in method"),
        (NAME, BASES, ("--target", "category", "--dim", "0"), "argument --dim: needs a whole number of at least 1"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(embedded_demo_path, tmp_path, name, base, extra, message):
    db = tmp_path / "demo.db"
    shutil.copy(embedded_demo_path, db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE items SET colour = 'Black'")  # one colour: nothing to learn from it
    done = run_here("tune", "--db", str(db), "--name", name, "--base", base, "--epochs", "2", *extra)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and message in done.stderr, done.stderr
    assert saved(db) == 0


def test_a_missing_catalog_is_not_created(tmp_path):
    done = run_here("tune", "--db", str(tmp_path / "none.db"), "--name", NAME, "--base", BASES, "--target", "category")
    assert done.returncode == 2 and "no catalog at" in done.stderr
    assert not (tmp_path / "none.db").exists()


def test_text_bases_learn_with_the_images_and_a_photo_is_ranked_by_the_image_signal(embedded_demo_path, tmp_path):
    db = tmp_path / "demo.db"
    shutil.copy(embedded_demo_path, db)
    base = "efficientnet_lite0,color_hist,minilm"
    done = tune_cli(db, "--target", "category,colour", "--force", "--json", name="worded", base=base)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["bases"] == base.split(",") and result["signal_weights"]["item"]["minilm"] > 0
    assert result["signal_weights"]["photo"] == {"efficientnet_lite0": 1.0}
    assert cli(db, "embed", "--method", "worded").returncode == 0
    photo = str(DEMO / "images" / "10129.jpg")
    through = json.loads(cli(db, "search", "--method", "worded", "--image", photo, "-k", "8", "--json").stdout)
    plain = json.loads(
        cli(db, "search", "--method", "efficientnet_lite0", "--image", photo, "-k", "8", "--json").stdout
    )
    assert [h["item_id"] for h in through["results"]] == [h["item_id"] for h in plain["results"]]
    item = json.loads(cli(db, "search", "--method", "worded", "--item", "10129", "-k", "8", "--json").stdout)
    assert [h["item_id"] for h in item["results"]] != [h["item_id"] for h in plain["results"][1:]]


@pytest.mark.parametrize("items", [3, 20])
def test_a_catalog_too_small_to_split_says_so_before_any_work(catalog, tmp_path, items):
    from core.catalog.importers import import_csv
    from core.engines.embed import embed_catalog

    from helpers import one_line, small_styles

    import_csv(catalog, *small_styles(tmp_path, items), progress=False)
    embed_catalog(catalog, "color_hist", progress=False)
    line = one_line(tune_cli(catalog.path, "--target", "category", base="color_hist"))
    assert line.startswith(f"error: too few items to tune on: {items} with vectors") and "at least 2" in line
    assert catalog.execute("SELECT count(*) FROM tuned_methods").fetchone()[0] == 0
