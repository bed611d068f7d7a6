"""Raters' agreement: Cohen's and Fleiss' kappa by hand and against scikit-learn, disagreements,
the second-opinion queue, per-rater figures; on the shared photos with simulated raters."""

from __future__ import annotations

import json

import pytest
from sklearn.metrics import cohen_kappa_score

from core.curation.agreement import agreement, cohen_kappa, fleiss_kappa
from core.curation.labels import Query, add_label
from core.curation.metrics import evaluate_labels
from core.curation.queues import disagreement_queue, second_opinion_queue
from core.curation.verdicts import read_verdicts

from helpers import judge_top_k, needs_shared, run_here, true_grade


def test_cohen_kappa_matches_a_hand_computation():
    first = ["good"] * 4 + ["close"] * 3 + ["wrong"] * 3
    second = ["good", "good", "good", "close", "close", "close", "wrong", "wrong", "wrong", "good"]
    # observed agreement 7/10; chance: good 0.4*0.4 + close 0.3*0.3 + wrong 0.3*0.3 = 0.34
    assert cohen_kappa(first, second) == pytest.approx((0.7 - 0.34) / (1 - 0.34))
    assert cohen_kappa(first, second) == pytest.approx(cohen_kappa_score(first, second))
    assert cohen_kappa(["good", "good"], ["good", "good"]) is None  # chance agreement is certain


def test_fleiss_kappa_matches_a_hand_computation():
    ratings = [["good"] * 3, ["good", "good", "wrong"], ["close"] * 3, ["wrong", "wrong", "close"]]
    # per pair agreement 1, 1/3, 1, 1/3 (mean 2/3); shares good 5/12, close 4/12, wrong 3/12 -> chance 50/144
    assert fleiss_kappa(ratings) == pytest.approx((2 / 3 - 50 / 144) / (1 - 50 / 144))
    assert fleiss_kappa(ratings) == pytest.approx(46 / 94)
    # one pair, two raters who disagree: agreement 0 against 1/2 by chance
    assert fleiss_kappa([["good", "wrong"]]) == pytest.approx(-1.0)


def flip(grade: str) -> str:
    return {"good": "close", "close": "wrong", "wrong": "good"}[grade]


@needs_shared
def test_two_simulated_raters_agree_as_scikit_learn_says(fashion_photos):
    db = fashion_photos
    queries = [r[0] for r in db.execute("SELECT id FROM items ORDER BY id")][::8][:40]
    judge_top_k(db, "hybrid", queries, "ana", grade=true_grade)  # good / close / wrong from type and colour
    pairs = db.execute("SELECT query_key, candidate_id, rank, grade FROM labels ORDER BY id").fetchall()
    disagree = set(range(0, len(pairs), 5))  # bo disagrees on a known share: every fifth pair
    for n, (query, candidate, rank, grade) in enumerate(pairs[:300]):  # and judges the first 300 only
        theirs = flip(grade) if n in disagree else grade
        add_label(db, Query.item(query), candidate, "hybrid", rank, theirs == "good", "bo", grade=theirs)
    ana = [g for *_, g in pairs[:300]]
    bo = [flip(g) if n in disagree else g for n, g in enumerate(ana)]

    found = agreement(read_verdicts(db))
    assert found.statistic == "cohen" and found.raters == ["ana", "bo"] and found.shared_pairs == 300
    assert found.kappa == pytest.approx(cohen_kappa_score(ana, bo))
    assert 0.5 < found.kappa < 0.9
    assert len(found.disagreements) == len([n for n in disagree if n < 300]) == 60
    assert {d.counting for d in found.disagreements} <= {"good", "close", "wrong"}

    # a third rater is offered the pairs only one person judged, without their verdict
    offered = second_opinion_queue(db, "cy", limit=1000)
    assert len(offered) == len(pairs) - 300 and all(p.known == "" for p in offered)
    assert second_opinion_queue(db, "ana", limit=1000) == []  # only ana judged them: nothing for her
    unsettled = disagreement_queue(db, "ana", limit=1000)
    assert len(unsettled) == 60 and "ana: " in unsettled[0].known and "bo: " in unsettled[0].known
    p = unsettled[0]
    add_label(db, Query.item(p.query_key), p.candidate_id, p.method, p.rank, False, "ana", grade="wrong")
    assert len(disagreement_queue(db, "ana", limit=1000)) == 59  # settled by her latest verdict

    cy = {}  # a third rater on 30 shared pairs: Fleiss' kappa over everyone
    for query, candidate, rank, grade in pairs[:30]:
        cy[(query, candidate)] = grade
        add_label(db, Query.item(query), candidate, "hybrid", rank, grade == "good", "cy", grade=grade)
    three = agreement(read_verdicts(db))
    assert three.statistic == "fleiss" and three.raters == ["ana", "bo", "cy"]
    assert {(k.first, k.second) for k in three.pairwise} == {("ana", "bo"), ("ana", "cy"), ("bo", "cy")}

    evaluation = evaluate_labels(db, k=10, methods=["hybrid"])
    by_rater = {r.rater: r.figures for r in evaluation.raters}
    assert by_rater["ana"].judged == len(pairs) and by_rater["bo"].judged == 300
    done = run_here("precision", "--json", "--db", str(db.path))
    answer = json.loads(done.stdout)
    assert answer["agreement"]["statistic"] == "fleiss" and answer["agreement"]["kappa"] == pytest.approx(three.kappa)
    assert {r["rater"] for r in answer["raters"]} == {"ana", "bo", "cy"}
