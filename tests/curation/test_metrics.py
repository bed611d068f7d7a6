"""Precision from labels: intervals, unknowns, per-category figures, metadata figures."""

from __future__ import annotations

import json
import math

import pytest
from scipy.stats import binomtest

from core.curation.grades import Scoring, scoring
from core.curation.labels import Query, add_label
from core.curation.measures import ListScore, precision_estimate, score_list, wilson_interval
from core.curation.metrics import evaluate_labels, precision_from_labels
from core.curation.queues import gap_queue
from core.curation.verdicts import read_verdicts
from core.search.space import open_space
from core.settings import SettingError

from helpers import judge_top_k, needs_shared, page, run_here, texts, true_grade


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
    [figure] = [f.as_dict() for f in precision_from_labels(demo_catalog, open_space(demo_catalog, "clip"), k=5)]
    assert figure["queries"] == 1 and figure["labels"] == 5 and figure["unknown"] == 0
    assert figure["precision_at_k"] == pytest.approx(3 / 5)
    assert figure["ci_low"] < 0.6 < figure["ci_high"]
    [wide] = [f.as_dict() for f in precision_from_labels(demo_catalog, open_space(demo_catalog, "clip"), k=10)]
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
    figures = {f.method: f.as_dict() for f in precision_from_labels(embedded_demo, k=10)}
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


def test_ndcg_mrr_and_graded_precision_match_a_hand_computation():
    chosen = Scoring(gains={"good": 3, "close": 1, "wrong": 0})
    grades = ["good", None, "close", "wrong", "good"]  # rank 2 was not judged
    known = ["good", "good", "close", "wrong", "good"]  # every verdict on this query (one found by another method)
    score = score_list(grades, known, 5, chosen)
    # judged results in their order, the unjudged one left out: gains 3, 1, 0, 3 at positions 1-4
    dcg = 3 / 1 + 1 / math.log2(3) + 0 / 2 + 3 / math.log2(5)
    ideal = 3 / 1 + 3 / math.log2(3) + 3 / 2 + 1 / math.log2(5) + 0 / math.log2(6)
    assert score.ndcg == pytest.approx(dcg / ideal) and score.ndcg == pytest.approx(0.72147, abs=1e-5)
    assert (score.judged, score.hits, score.reciprocal_rank) == (4, 2.5, 1.0)  # close counts half
    assert score_list(["wrong", None, "good"], ["wrong", "good"], 3, chosen).reciprocal_rank == pytest.approx(1 / 3)
    assert score_list(["wrong", "close"], ["wrong", "close"], 2, chosen).reciprocal_rank == 0.0  # no good result
    assert score_list([None, None], ["good"], 2, chosen) == ListScore(0, 0.0, None, None)  # unknown, not wrong
    assert score_list(["wrong"], ["wrong"], 1, chosen).ndcg is None  # nothing good known: nDCG undefined
    # an unjudged result never counts as wrong: the same judged results with gaps score the same
    assert score_list(["good", None, None, "close"], known, 5, chosen).ndcg == pytest.approx(
        score_list(["good", "close"], known, 5, chosen).ndcg
    )
    half = precision_estimate([score])
    assert half.value == pytest.approx(2.5 / 4) and half.low < half.value < half.high


def test_scoring_comes_from_the_settings_and_bad_values_name_their_variable(monkeypatch):
    assert scoring() == Scoring(gains={"good": 3.0, "close": 1.0, "wrong": 0.0}, close_share=0.5, min_judged=0.8)
    monkeypatch.setenv("LOOKALIKE_GAINS", "good=2, close=2")
    monkeypatch.setenv("LOOKALIKE_CLOSE_SHARE", "0")
    monkeypatch.setenv("LOOKALIKE_MIN_JUDGED", "0.5")
    chosen = scoring()
    assert chosen.gains == {"good": 2.0, "close": 2.0, "wrong": 0.0} and chosen.hit("close") == 0.0
    assert chosen.min_judged == 0.5
    for name, value in (("LOOKALIKE_GAINS", "good=1,close=2"), ("LOOKALIKE_CLOSE_SHARE", "half")):
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingError, match=name):
            scoring()
        monkeypatch.delenv(name)


def test_a_curators_verdict_counts_over_a_later_one(demo_catalog, monkeypatch):
    q, a = [r[0] for r in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 2")]
    add_label(demo_catalog, Query.item(q), a, "m", 1, True, "cur", grade="close")
    add_label(demo_catalog, Query.item(q), a, "m", 1, True, "ana", grade="good")
    assert read_verdicts(demo_catalog).counting == {("item", q, a): "good"}  # the latest
    monkeypatch.setenv("LOOKALIKE_CURATOR", "cur")
    found = read_verdicts(demo_catalog)
    assert found.counting == {("item", q, a): "close"} and "curator cur" in found.rule()
    assert found.by_rater == {"cur": {("item", q, a): "close"}, "ana": {("item", q, a): "good"}}


def type_and_colour(db, method: str, queries: list[str], k: int = 10) -> float:
    """The share of a method's top k (every result, judged or not) with the query's type and colour."""
    from core.search.queries import search_many

    found = [
        true_grade(db, q, h.item_id) == "good"
        for q, hits in search_many(open_space(db, method), queries, k)
        for h in hits
    ]
    return sum(found) / len(found)


@needs_shared
def test_a_barely_judged_method_is_not_ranked_above_a_better_one(fashion_photos, monkeypatch):
    """The issue's case: verdicts on one method's lists only make a barely judged method look best by
    judged-only precision; the page and `precision --json` must not rank it above the better method."""
    db = fashion_photos
    items = [r[0] for r in db.execute("SELECT id FROM items ORDER BY id")]
    queries = items[::4][:100]
    judge_top_k(db, "hybrid", queries, "sim")  # relevant = same articleType and baseColour
    truth = {m: type_and_colour(db, m, queries) for m in ("hybrid", "color_hist", "efficientnet_lite0")}
    assert truth["hybrid"] > truth["color_hist"]  # on every result, judged or not, hybrid is better
    found = {f.method: f.as_dict() for f in precision_from_labels(db, k=10)}
    # the trap: judged-only precision puts the barely judged colour method first
    assert found["color_hist"]["precision_at_k"] > found["hybrid"]["precision_at_k"]
    assert found["color_hist"]["judged_share"] < 0.5 and found["hybrid"]["judged_share"] == 1.0
    assert not found["color_hist"]["comparable"] and found["color_hist"]["rank"] is None
    assert found["hybrid"]["rank"] == 1

    done = run_here("precision", "--json", "--db", str(db.path))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    order = answer["ranking"]["order"]
    assert order[0] == "hybrid" and "color_hist" not in order
    assert "color_hist" in answer["ranking"]["not_comparable"] and answer["gap"] > 0
    methods = {m["method"]: m for m in answer["methods"]}
    assert methods["hybrid"]["ndcg_at_k"]["value"] is not None and methods["hybrid"]["mrr"]["value"] is not None
    assert methods["color_hist"]["judged_share"] == pytest.approx(found["color_hist"]["judged_share"])

    monkeypatch.setenv("LOOKALIKE_DB", str(db.path))
    at = page("precision")
    table = at.dataframe[0].value
    assert table.iloc[0]["method"] == "hybrid" and table.iloc[0]["rank"] == "1"
    colour = table[table["method"] == "color_hist"].iloc[0]
    assert colour["judged"] < 0.5 and colour["rank"] == "–"
    assert "Not comparable: color_hist" in texts(at)

    at.button(key="judge_gap").click().run()  # to the Label page's pooled gap queue
    assert not at.exception
    assert at.session_state["label_mode"] == "Pairs to judge" and at.session_state["label_queue"].startswith(
        "judge the gap"
    )
    pairs, total = gap_queue(db, ["hybrid", "color_hist", "efficientnet_lite0"], 10, limit=10_000)
    assert total == answer["gap"] == len(pairs)
    for p in pairs:  # the gap judged, the methods are compared on the same results
        verdict = "good" if true_grade(db, p.query_key, p.candidate_id) == "good" else "wrong"
        add_label(
            db, Query.item(p.query_key), p.candidate_id, p.method, p.rank, verdict == "good", "sim", grade=verdict
        )
    after = evaluate_labels(db, k=10)
    assert after.ranking.not_comparable == [] and after.ranking.queries == len(queries)
    assert after.ranking.order == sorted(truth, key=lambda m: -truth[m])  # the order of the true figures
