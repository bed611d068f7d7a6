"""Metadata precision: P@k and mAP@k by definition, against shuffled vectors, chi-square, the CLI's JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from core.catalog.importers import import_csv
from core.catalog.vectors import load_matrix
from core.curation.evaluate import evaluate, evaluate_vectors, grouping_fields, joint_values, precision_scores
from core.methods.distances import chi2_distances
from core.search.space import open_space

from helpers import ROOT, STYLES_HEADER, STYLES_ROW, styles_csv


def test_precision_and_average_precision_follow_their_definitions():
    labels = ["a", "a", "a", "b", "b", "c"]
    found = np.array(
        [
            [1, 3, 2],  # query 0 (a): hit, miss, hit -> P@3 2/3, AP (1 + 2/3) / 2
            [0, 4, 5],
        ]
    )  # query 3 (b): miss, hit, miss -> P@3 1/3, AP (1/2) / 1
    precision, mean_ap = precision_scores(labels, found, np.array([0, 3]), k=3)
    assert precision == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert mean_ap == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)


def test_default_method_beats_shuffled_vectors_by_type(embedded_demo):
    result = evaluate(open_space(embedded_demo, "efficientnet_lite0"), "articleType", k=10)
    ids, matrix = load_matrix(embedded_demo, "efficientnet_lite0")
    shuffled = matrix[np.random.default_rng(0).permutation(len(ids))]
    chance = evaluate_vectors(embedded_demo, "efficientnet_lite0", ids, shuffled, "articleType", k=10)
    assert result.queries == len(ids) == 300
    assert result.precision_at_k > chance.precision_at_k + 0.3
    assert 0 < result.map_at_k <= 1


def test_colour_beats_the_default_on_base_colour(embedded_demo):
    colour = evaluate(open_space(embedded_demo, "color_hist"), "baseColour", k=10)
    deep = evaluate(open_space(embedded_demo, "efficientnet_lite0"), "baseColour", k=10)
    assert colour.precision_at_k > deep.precision_at_k


def test_chi_square_evaluation_reranks_and_never_counts_the_query(embedded_demo):
    cosine = evaluate(open_space(embedded_demo, "color_hist"), "baseColour", k=10)
    chi2 = evaluate(open_space(embedded_demo, "color_hist"), "baseColour", k=10, distance="chi2")
    assert chi2.distance == "chi2" and chi2.queries == cosine.queries == 300
    assert chi2.precision_at_k != cosine.precision_at_k and 0 < chi2.precision_at_k < 1
    # The same figure by hand: the 100 best cosine candidates (the query itself never among them),
    # re-ranked by chi-square on the histograms, top 10 compared by base colour.
    ids, matrix = load_matrix(embedded_demo, "color_hist")
    values = joint_values(embedded_demo, ids, "baseColour")
    rows = [n for n, v in enumerate(values) if v is not None]
    hists, colours = matrix[rows], [values[n] for n in rows]
    unit = hists / np.linalg.norm(hists, axis=1, keepdims=True)
    precisions = []
    for q in range(len(rows)):
        cosines = unit @ unit[q]
        cosines[q] = -np.inf
        candidates = np.argsort(-cosines, kind="stable")[:100]
        top = candidates[np.argsort(chi2_distances(hists[q], hists[candidates]), kind="stable")[:10]]
        assert q not in top
        precisions.append(np.mean([colours[t] == colours[q] for t in top]))
    assert chi2.precision_at_k == pytest.approx(np.mean(precisions), abs=0.003)


def test_seeded_query_sample_is_reproducible(embedded_demo):
    first = evaluate(open_space(embedded_demo, "color_hist"), "articleType", k=5, queries=40, seed=3)
    again = evaluate(open_space(embedded_demo, "color_hist"), "articleType", k=5, queries=40, seed=3)
    assert first == again and first.queries == 40


def test_evaluate_without_vectors_says_what_to_do(demo_catalog):
    with pytest.raises(ValueError, match="embed the catalog first"):
        evaluate(open_space(demo_catalog, "efficientnet_lite0"))


def test_cli_evaluate_json(embedded_demo_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "core",
            "evaluate",
            "--method",
            "color_hist",
            "--attribute",
            "articleType",
            "-k",
            "10",
            "--queries",
            "50",
            "--json",
            "--db",
            str(embedded_demo_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout)
    assert {"method", "attribute", "k", "queries", "precision_at_k", "map_at_k"} <= set(result)
    assert result["method"] == "color_hist" and result["k"] == 10 and result["queries"] == 50
    assert 0 < result["precision_at_k"] <= 1


def test_grouping_fields_need_two_distinct_values(demo_catalog):
    fields = grouping_fields(demo_catalog)
    assert fields[:3] == ["category", "colour", "gender"]  # brand: empty in the demo slice
    assert {"masterCategory", "usage", "season"} <= set(fields)  # keys of the attributes JSON
    ids = [i for (i,) in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 2")]
    with demo_catalog.conn:
        # updated_at moves as an import's update moves it: grouping_fields is cached until the items change
        demo_catalog.execute(
            "UPDATE items SET brand = 'Acme', updated_at = '2100-01-01 00:00:01' WHERE id = ?", [ids[0]]
        )
        demo_catalog.execute(
            "UPDATE items SET attributes = json_set(attributes, '$.fit', 'slim', '$.colour', 'red') WHERE id = ?",
            [ids[0]],
        )
    assert "brand" not in grouping_fields(demo_catalog) and "fit" not in grouping_fields(demo_catalog)
    with demo_catalog.conn:
        demo_catalog.execute(
            "UPDATE items SET brand = 'Other', attributes = json_set(attributes, '$.fit', 'loose', '$.colour', 'blue'), "
            "updated_at = '2100-01-01 00:00:02' WHERE id = ?",
            [ids[1]],
        )
    fields = grouping_fields(demo_catalog)
    assert fields[:4] == ["category", "colour", "brand", "gender"] and "fit" in fields
    assert fields.count("colour") == 1  # a key that a column shadows is left out
    assert joint_values(demo_catalog, ids, ["fit", "brand"]) == [("slim", "Acme"), ("loose", "Other")]


def test_evaluate_says_which_input_is_short(embedded_demo):
    """An unknown attribute is named (with the ones that exist), a k beyond the catalog says so; neither
    is told to embed a catalog that is embedded."""
    space = open_space(embedded_demo, "color_hist")
    with pytest.raises(ValueError, match="has a value for 'nosuch'; attributes that group items here: category"):
        evaluate(space, "nosuch")
    with pytest.raises(ValueError, match="-k 5000 needs more than 5000 items .* there are 300: choose a smaller -k"):
        evaluate(space, "articleType", k=5000)


def test_grouping_fields_are_cached_until_the_items_change(catalog, tmp_path):
    from core.curation.evaluate import grouping_fields

    header = STYLES_HEADER + "".join(f",extra{n}" for n in range(900))
    rows = [STYLES_ROW.format(n) + "".join(f",v{n}{c}" for c in range(900)) for n in range(3)]
    import_csv(catalog, styles_csv(tmp_path, header, rows), progress=False)
    first = grouping_fields(catalog)
    assert "extra899" in first and "category" not in first  # one category only
    statements: list[str] = []
    catalog.conn.set_trace_callback(statements.append)
    assert grouping_fields(catalog) == first
    catalog.conn.set_trace_callback(None)
    assert len(statements) == 1 and "json_each" not in statements[0]
    rows.append(STYLES_ROW.format(9).replace("Tshirts", "Shirts") + ",x" * 900)
    import_csv(catalog, styles_csv(tmp_path, header, rows, "more.csv"), progress=False)
    assert "category" in grouping_fields(catalog)
