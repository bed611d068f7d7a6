"""Metadata precision: neighbours exclude the query, P@k and mAP@k by definition, the CLI's JSON."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from core.evaluate import evaluate, neighbours, precision_scores
from core.vectors import load_matrix


def test_neighbours_exclude_the_query_even_when_a_duplicate_exists():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(50, 8)).astype(np.float32)
    matrix[7] = matrix[3]                                   # an exact duplicate of item 3
    found = neighbours(matrix, np.arange(50), k=5)
    assert found.shape == (50, 5)
    assert all(q not in row for q, row in enumerate(found))
    assert found[3, 0] == 7 and found[7, 0] == 3
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    best = -np.sort(-sims, axis=1)[:, :5]
    assert np.allclose(np.take_along_axis(sims, found, axis=1), best)   # the top 5 of a full sort, in order


def test_chi2_distance_reranks_by_chi_square():
    from core.extractors.colour import chi2_distances
    rng = np.random.default_rng(1)
    hists = rng.random((200, 24))
    hellinger = np.sqrt(hists / hists.sum(axis=1, keepdims=True)).astype(np.float32)
    found = neighbours(hellinger, np.array([0, 5]), k=10, distance="chi2")
    for q, row in zip((0, 5), found):
        distances = chi2_distances(hellinger[q], hellinger[row])
        assert q not in row and np.all(np.diff(distances) >= 0)
        others = np.delete(np.arange(200), q)
        best = others[np.argsort(chi2_distances(hellinger[q], hellinger[others]))[:10]]
        assert set(row) == set(best)                        # candidates cover the true chi-square top 10


def test_precision_and_average_precision_follow_their_definitions():
    labels = ["a", "a", "a", "b", "b", "c"]
    found = np.array([[1, 3, 2],     # query 0 (a): hit, miss, hit -> P@3 2/3, AP (1 + 2/3) / 2
                      [0, 4, 5]])    # query 3 (b): miss, hit, miss -> P@3 1/3, AP (1/2) / 1
    precision, mean_ap = precision_scores(labels, found, np.array([0, 3]), k=3)
    assert precision == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert mean_ap == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)


def test_default_method_beats_shuffled_vectors_by_type(embedded_demo):
    result = evaluate(embedded_demo, "efficientnet_lite0", "articleType", k=10)
    ids, matrix = load_matrix(embedded_demo, "efficientnet_lite0")
    shuffled = matrix[np.random.default_rng(0).permutation(len(ids))]
    chance = evaluate(embedded_demo, "efficientnet_lite0", "articleType", k=10, matrix=(ids, shuffled))
    assert result["queries"] == len(ids) == 300
    assert result["precision_at_k"] > chance["precision_at_k"] + 0.3
    assert 0 < result["map_at_k"] <= 1


def test_colour_beats_the_default_on_base_colour(embedded_demo):
    colour = evaluate(embedded_demo, "color_hist", "baseColour", k=10)
    deep = evaluate(embedded_demo, "efficientnet_lite0", "baseColour", k=10)
    assert colour["precision_at_k"] > deep["precision_at_k"]


def test_seeded_query_sample_is_reproducible(embedded_demo):
    first = evaluate(embedded_demo, "color_hist", "articleType", k=5, queries=40, seed=3)
    again = evaluate(embedded_demo, "color_hist", "articleType", k=5, queries=40, seed=3)
    assert first == again and first["queries"] == 40


def test_evaluate_without_vectors_says_what_to_do(demo_catalog):
    with pytest.raises(ValueError, match="embed the catalog first"):
        evaluate(demo_catalog, "efficientnet_lite0")


def test_cli_evaluate_json(embedded_demo_path):
    done = subprocess.run([sys.executable, "-m", "core", "evaluate", "--method", "color_hist", "--attribute",
                           "articleType", "-k", "10", "--queries", "50", "--json", "--db", str(embedded_demo_path)],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert {"method", "attribute", "k", "queries", "precision_at_k", "map_at_k"} <= set(result)
    assert result["method"] == "color_hist" and result["k"] == 10 and result["queries"] == 50
    assert 0 < result["precision_at_k"] <= 1
