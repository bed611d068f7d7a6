"""The re-rankings of core/curation/steering.py on small made-up vectors."""

from __future__ import annotations

import numpy as np

from core.curation.steering import Steering, diverse_order, steered_scores
from core.methods.distances import unit


def test_steered_scores_move_toward_the_liked_and_away_from_the_disliked():
    query = unit(np.array([[1.0, 0.0, 0.0]]))[0]
    candidates = unit(np.array([[1.0, 0.1, 0.0], [1.0, 0.0, 0.1], [0.8, 0.6, 0.0]]))
    liked, disliked = unit(np.array([[0.0, 0.0, 1.0]])), unit(np.array([[0.0, 1.0, 0.0]]))
    plain = steered_scores(query, candidates, liked[:0], disliked[:0])
    assert np.argmax(plain) in (0, 1) and np.allclose(plain, candidates @ query)
    steered = steered_scores(query, candidates, liked, disliked, Steering(1.0, 1.0))
    assert np.argmax(steered) == 1 and np.argmin(steered) == 2
    expected = candidates @ query + candidates @ liked[0] - candidates @ disliked[0]
    assert np.allclose(steered, expected)


def test_diverse_order_passes_over_near_copies():
    candidates = unit(np.array([[1.0, 0.0], [1.0, 0.01], [0.7, 0.7]]))
    scores = np.array([0.9, 0.89, 0.8])
    assert diverse_order(scores, candidates, candidates[:0], 0.0) == [0, 1, 2]
    assert diverse_order(scores, candidates, candidates[:0], 0.5) == [0, 2, 1]
    assert diverse_order(scores, candidates, candidates[:0], 0.5, limit=1) == [0, 1, 2]
    assert diverse_order(scores, candidates, candidates[:1], 0.5)[0] == 2  # far from what is already chosen
