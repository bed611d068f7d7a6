"""Precision from labels: intervals, unknowns, per-category figures, metadata figures."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from core.curation.labels import Query, add_label
from core.curation.metrics import precision_from_labels, wilson_interval
from core.search.space import open_space


@pytest.mark.parametrize("successes,trials", [(0, 5), (3, 10), (7, 7), (45, 60)])
def test_wilson_interval_contains_estimate_and_matches_scipy(successes, trials):
    low, high = wilson_interval(successes, trials)
    assert low <= successes / trials <= high
    ref = binomtest(successes, trials).proportion_ci(0.95, method="wilson")
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_no_labels_gives_empty_list(demo_catalog):
    assert precision_from_labels(demo_catalog) == []


def test_uploaded_queries_use_results_as_shown(demo_catalog):
    items = [r[0] for r in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 6")]
    upload = Query.upload("f" * 64)
    for rank, (candidate, relevant) in enumerate(zip(items, [1, 1, 0, 1, 0, 0]), start=1):
        add_label(demo_catalog, upload, candidate, "clip", rank, bool(relevant), "ana")
    [figure] = precision_from_labels(demo_catalog, open_space(demo_catalog, "clip"), k=5)
    assert figure["queries"] == 1 and figure["labels"] == 5 and figure["unknown"] == 0
    assert figure["precision_at_k"] == pytest.approx(3 / 5)
    assert figure["ci_low"] < 0.6 < figure["ci_high"]
    [wide] = precision_from_labels(demo_catalog, open_space(demo_catalog, "clip"), k=10)
    assert wide["labels"] == 6 and wide["unknown"] == 4
    assert wide["by_category"]["uploaded photos"]["queries"] == 1


def test_item_queries_are_searched_again_and_unknowns_reported(embedded_demo):
    from core.search.queries import search

    query = embedded_demo.execute("SELECT min(item_id) FROM embeddings WHERE method = 'efficientnet_lite0'").fetchone()[
        0
    ]
    shown = search(open_space(embedded_demo, "efficientnet_lite0"), item_id=query, k=10).results
    colour_shown = search(open_space(embedded_demo, "color_hist"), item_id=query, k=10).results
    verdicts = {}
    for hit in shown[:4]:  # judged under one method: 3 relevant, 1 not
        add_label(embedded_demo, Query.item(query), hit.item_id, "efficientnet_lite0", hit.rank, hit.rank != 2, "ana")
        verdicts[hit.item_id] = hit.rank != 2
    extra = next(h for h in colour_shown if h.item_id not in verdicts)  # and one under the colour method
    add_label(embedded_demo, Query.item(query), extra.item_id, "color_hist", extra.rank, False, "ana")
    verdicts[extra.item_id] = False
    figures = {f["method"]: f for f in precision_from_labels(embedded_demo, k=10)}
    for method, results in (("efficientnet_lite0", shown), ("color_hist", colour_shown)):
        judged = [verdicts[h.item_id] for h in results if h.item_id in verdicts]
        figure = figures[method]  # a judgement counts for whichever method returns the pair
        assert figure["queries"] == 1 and figure["labels"] == len(judged) and figure["unknown"] == 10 - len(judged)
        assert figure["precision_at_k"] == pytest.approx(sum(judged) / len(judged))
    deep = figures["efficientnet_lite0"]
    assert deep["labels"] >= 4 and figures["color_hist"]["labels"] >= 1
    category = embedded_demo["items"].get(query)["category"]
    assert deep["by_category"][category]["labels"] == deep["labels"]
    same = sum(h.category == category for h in shown) / 10
    assert deep["metadata_precision"]["category"] == pytest.approx(same)
