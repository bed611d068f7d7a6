"""A live index (core/search/delta.py): the Annoy bulk merged with an exact delta of what changed,
compacted in the background with an atomic swap; and one complete version of a method's vectors
served until a new one is whole (core/catalog/vectors.py: embeddings_next, promote)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core.catalog import vectors
from core.catalog.vectors import get_vector, load_matrix, store
from core.curation.evaluate import evaluate
from core.curation.export import export_similar
from core.engines.embed import embed_catalog, serve_when_complete
from core.methods.registry import method_states
from core.search import caches, delta, neighbours
from core.search.delta import compact_in_background
from core.search.index import read_manifest
from core.search.near_duplicates import find_duplicates
from core.search.neighbours import ScreenedNeighbours
from core.search.queries import search_many
from core.search.space import open_space

METHOD = "color_hist"


@pytest.fixture
def indexed(demo_catalog):
    embed_catalog(demo_catalog, METHOD, progress=False)
    open_space(demo_catalog, METHOD).build_index(trees=20, progress=False)
    return demo_catalog


def _change(db, rng, n: int) -> list[str]:
    """Give n items new (random, non-negative) vectors and mark n others gone."""
    ids, matrix = load_matrix(db, METHOD)
    chosen = rng.choice(len(ids), 2 * n, replace=False)
    fresh = np.abs(rng.normal(size=(n, matrix.shape[1]))).astype(np.float32)
    store(db, METHOD, open_space(db, METHOD).searched_version(), [(ids[c], v, "x") for c, v in zip(chosen[:n], fresh)])
    gone = [ids[c] for c in chosen[n:]]
    with db.conn:
        db.conn.executemany("UPDATE items SET gone_at = datetime('now') WHERE id = ?", [(i,) for i in gone])
    return gone


def _ranked(space, queries, k=10):
    return {q: [h.item_id for h in hits] for q, hits in search_many(space, queries, k)}


def test_merged_search_equals_exact_search_over_the_live_items(indexed):
    first = open_space(indexed, METHOD, backend="annoy").loaded_index()
    gone = _change(indexed, np.random.default_rng(3), 20)
    merged = open_space(indexed, METHOD, backend="annoy")
    assert merged.loaded_index() is first and len(merged.delta(first).changed) == 40  # no rebuild
    live = [i for i in vectors.item_ids_with_vectors(indexed, METHOD)]
    assert len(live) == 280 and not set(live) & set(gone)
    exact, annoy = _ranked(open_space(indexed, METHOD, backend="exact"), live), _ranked(merged, live)
    recall = np.mean([len(set(exact[q]) & set(annoy[q])) / 10 for q in live])
    assert recall >= 0.95 and not {i for r in annoy.values() for i in r} & set(gone)
    changed = sorted(merged.delta(first).changed - set(gone))
    assert all(exact[q] == annoy[q] for q in changed)  # the changed items find the same neighbours


def test_a_screened_delta_finds_what_exact_search_over_the_live_items_finds(indexed, monkeypatch):
    monkeypatch.setattr(delta, "SCREEN_FROM", 10)  # 20 changed vectors: found through their projection,
    monkeypatch.setattr(neighbours, "SCREEN_DEPTH", 1)  # the 10 best candidates of 20 scored exactly
    monkeypatch.setattr(neighbours, "SCREEN_MIN", 1)
    first = open_space(indexed, METHOD, backend="annoy").loaded_index()
    gone = set(_change(indexed, np.random.default_rng(3), 20))
    merged = open_space(indexed, METHOD, backend="annoy").annoy_neighbours()
    assert isinstance(merged.delta, ScreenedNeighbours) and merged.bulk.index is first  # no rebuild
    exact = open_space(indexed, METHOD, backend="exact").exact_index()
    assert len(exact.ids) == 280 and not set(exact.ids) & gone
    truth, found = exact.neighbours(exact.matrix, 10), merged.neighbours(exact.matrix, 10)
    changed = set(merged.delta.ids)
    assert len(changed) == 20
    for want, got in zip(truth, found):
        assert not {i for i, _ in got} & gone
        assert {i for i, _ in want} & changed <= {i for i, _ in got}  # every changed item exact search finds
        scores = dict(want)
        assert [s for i, s in got if i in scores] == pytest.approx([scores[i] for i, _ in got if i in scores], abs=1e-5)
    assert np.mean([len({i for i, _ in w} & {i for i, _ in g}) / 10 for w, g in zip(truth, found)]) >= 0.95
    assert [merged.neighbours(exact.vectors([i]), 1)[0][0][0] for i in sorted(changed)] == sorted(changed)


def test_a_delta_brought_up_to_date_equals_one_loaded_whole(indexed, monkeypatch):
    """A sync's batches: each request after one reads only what it changed, keeping the projection,
    and finds what a delta read whole finds (changed vectors replaced, gone items out)."""
    monkeypatch.setattr(delta, "SCREEN_FROM", 10)
    space = open_space(indexed, METHOD, backend="annoy")
    first = space.loaded_index()
    rng = np.random.default_rng(7)
    _change(indexed, rng, 10)
    before = space.delta(first)
    reads = []
    monkeypatch.setattr(delta, "vectors_of", lambda *a: reads.append(len(a[2])) or vectors.vectors_of(*a))
    gone = set(_change(indexed, rng, 5))  # changed again: some of the first batch's items may be among them
    after = space.delta(first)
    assert len(reads) == 1 and reads[0] < len(after.changed) == 30  # the second batch's, not all 30 again
    assert after.exact.basis is before.exact.basis  # the projection kept
    caches.clear(caches.DELTAS)
    whole = space.delta(first)
    assert after.changed == whole.changed and sorted(after.exact.ids) == whole.exact.ids  # kept rows, then new ones
    assert not set(after.exact.ids) & gone
    np.testing.assert_allclose(after.exact.vectors(whole.exact.ids), whole.exact.matrix, atol=1e-6)
    queries = whole.exact.matrix
    assert [[i for i, _ in r] for r in after.exact.neighbours(queries, 5)] == [
        [i for i, _ in r] for r in whole.exact.neighbours(queries, 5)
    ]


def test_compaction_swaps_atomically_while_a_reader_searches(indexed, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_COMPACT_SHARE", "0.05")
    _change(indexed, np.random.default_rng(5), 10)  # 20 of 300 changed: past 5%
    live = vectors.item_ids_with_vectors(indexed, METHOD)[:40]
    expected = _ranked(open_space(indexed, METHOD, backend="exact"), live)
    before = read_manifest(indexed, METHOD)
    answers, errors, stop = [], [], threading.Event()

    def reader() -> None:
        from core.catalog.db import open_catalog

        own = open_catalog(indexed.path, read_only=True)
        while not stop.is_set():
            try:
                answers.append(_ranked(open_space(own, METHOD, backend="annoy"), live))
            except Exception as exc:  # noqa: BLE001 - any failure is what the test looks for
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        builder = compact_in_background(indexed, METHOD, "hellinger", open_space(indexed, METHOD).searched_version())
        builder.join(60)
    finally:
        stop.set()
        thread.join(60)
    after = read_manifest(indexed, METHOD)
    assert after.built_at != before.built_at and after.items == 290
    assert not errors and answers
    for answer in answers:  # old build + delta, or the new build: never a half-built index
        agree = np.mean([len(set(answer[q]) & set(expected[q])) / 10 for q in live])
        assert agree >= 0.95
    swapped = open_space(indexed, METHOD, backend="annoy")
    assert swapped.loaded_index().info.built_at == after.built_at
    assert len(swapped.delta(swapped.loaded_index()).changed) <= 1  # at most the change at the build's generation


def test_a_partial_re_embed_serves_the_complete_old_version_everywhere(indexed, tmp_path):
    """Issue 27 case 6: a new version embedded for 50 of 300 items changes nothing served."""
    space = open_space(indexed, METHOD)
    old = space.searched_version()
    ids, matrix = load_matrix(indexed, METHOD)
    store(indexed, METHOD, "next", [(i, -v, "x") for i, v in zip(ids[:50], matrix[:50])])
    caches.clear()
    space = open_space(indexed, METHOD)
    assert space.searched_version() == old and space.vector_count() == 300
    assert np.array_equal(get_vector(indexed, METHOD, ids[0]), matrix[0])  # the served vector is untouched
    assert len(list(search_many(space, ids, 5))) == 300
    assert export_similar(space, 2, tmp_path / "e.csv", progress=False) == 600
    assert find_duplicates(space, threshold=0.99, progress=False) == find_duplicates(
        open_space(indexed, METHOD), threshold=0.99, progress=False
    )
    assert evaluate(space, "category", k=5).queries == 300
    state = next(m for m in method_states(indexed) if m.name == METHOD)
    assert "new version being embedded: 50/300" in (state.todo or "")
    report = embed_catalog(indexed, METHOD, progress=False)  # the real version: nothing pending
    serve_when_complete(indexed, report, None)
    assert vectors.next_version(indexed, METHOD, "image") is not None  # 'next' is not the version embedded
    promoted = vectors.promote(indexed, METHOD, "next")
    assert promoted == 50 and open_space(indexed, METHOD).searched_version() == "next"
    assert np.array_equal(get_vector(indexed, METHOD, ids[0]), -matrix[0])
