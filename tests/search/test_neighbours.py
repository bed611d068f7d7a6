"""The neighbour backends on synthetic vectors: exact = brute force, Annoy recall, filters, exclusion, ties, chi-square."""

from __future__ import annotations

import numpy as np
import pytest

from core.methods.distances import chi2_distances
from core.search.index import IndexInfo, LoadedIndex, make_annoy
from core.search.neighbours import AnnoyNeighbours, ExactNeighbours, MergedNeighbours, ScreenedNeighbours


def clustered(n: int, dim: int = 32, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """n vectors around 40 centres (like products of a few kinds), ids in order."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    matrix = (centres[rng.integers(0, 40, n)] + 0.6 * rng.normal(size=(n, dim))).astype(np.float32)
    return [f"i{j:05d}" for j in range(n)], matrix


def annoy(ids: list[str], matrix: np.ndarray, trees: int = 10, search_k: int | None = None) -> AnnoyNeighbours:
    info = IndexInfo(
        method="synthetic",
        versions=["1"],
        metric="angular",
        dim=matrix.shape[1],
        trees=trees,
        items=len(ids),
        checksum="",
        generation=0,
        build_seconds=0.0,
        ann_bytes=0,
        built_at="",
    )
    return AnnoyNeighbours(LoadedIndex(info, ids, make_annoy(matrix, trees)), search_k)


def backend_index(backend: str, ids: list[str], matrix: np.ndarray):
    if backend == "exact":
        return ExactNeighbours(ids, matrix)
    if backend == "screened":  # a projection on 8 of 32 dimensions finds the candidates
        return ScreenedNeighbours(ids, matrix, rank=8)
    return annoy(ids, matrix)


def brute_force(ids, matrix, query, k, keep=lambda i: True) -> list[tuple[str, float]]:
    """Cosine of every item, sorted in Python: best first, ties by id."""
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    sims = unit @ (query / np.linalg.norm(query))
    return sorted(((i, float(s)) for i, s in zip(ids, sims) if keep(i)), key=lambda p: (-p[1], p[0]))[:k]


def test_exact_equals_brute_force_for_a_batch_of_queries():
    ids, matrix = clustered(700)
    queries = np.random.default_rng(1).normal(size=(300, 32))  # more than one block of 256
    found = ExactNeighbours(ids, matrix).neighbours(queries, 10)
    assert len(found) == 300
    for query, ranked in zip(queries, found):
        expected = brute_force(ids, matrix, query, 10)
        assert [i for i, _ in ranked] == [i for i, _ in expected]
        assert [s for _, s in ranked] == pytest.approx([s for _, s in expected], abs=1e-5)


def test_one_vector_in_and_more_than_there_are():
    ids, matrix = clustered(30)
    [ranked] = ExactNeighbours(ids, matrix).neighbours(matrix[4], 50)
    assert len(ranked) == 30 and ranked[0] == ("i00004", pytest.approx(1.0, abs=1e-5))
    assert ExactNeighbours([], np.zeros((0, 0))).neighbours(matrix[:2], 5) == [[], []]


def test_annoy_recall_against_exact():
    ids, matrix = clustered(3000)
    queries = clustered(60, seed=5)[1]
    exact = ExactNeighbours(ids, matrix).neighbours(queries, 10)
    approximate = annoy(ids, matrix).neighbours(queries, 10)
    recall = np.mean([len({i for i, _ in a} & {i for i, _ in e}) / 10 for a, e in zip(approximate, exact)])
    assert recall >= 0.9
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    position = {i: n for n, i in enumerate(ids)}
    for query, ranked in zip(queries, approximate):  # scores are true cosines, best first
        q = query / np.linalg.norm(query)
        assert [s for _, s in ranked] == pytest.approx([float(unit[position[i]] @ q) for i, _ in ranked], abs=1e-5)
        assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)


def low_rank(n: int, dim: int = 64, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """n vectors whose variance falls off over their dimensions, as learned embeddings' does."""
    rng = np.random.default_rng(seed)
    matrix = (
        rng.normal(size=(n, dim)) * np.exp(-np.arange(dim) / 6)
        + 0.3 * rng.normal(size=(40, dim))[rng.integers(0, 40, n)]
    )
    return [f"r{j:05d}" for j in range(n)], matrix.astype(np.float32)


@pytest.mark.parametrize("make", [clustered, low_rank])
def test_screened_search_equals_exact_search(make):
    ids, matrix = make(3000, dim=64)
    queries = make(100, dim=64, seed=5)[1]
    screened, exact = ScreenedNeighbours(ids, matrix, rank=16), ExactNeighbours(ids, matrix)
    assert screened.projected.shape == (3000, 16)
    allowed, excluded = set(ids[::3]), [{ids[j]} for j in range(100)]
    for options in ({}, {"allowed": allowed}, {"exclude": excluded}):
        found, expected = screened.neighbours(queries, 10, **options), exact.neighbours(queries, 10, **options)
        assert [[i for i, _ in r] for r in found] == [[i for i, _ in r] for r in expected]
        for a, e in zip(found, expected):
            assert [s for _, s in a] == pytest.approx([s for _, s in e], abs=1e-5)
    assert [screened.neighbours(q, 10)[0] for q in queries[:10]] == screened.neighbours(queries[:10], 10)


@pytest.mark.parametrize("kind", ["exact", "screened"])
def test_an_updated_index_is_the_one_made_from_its_rows(kind):
    """A sync's batch: some rows dropped, some replaced, some new; the rows kept are not redone, and the
    result is the index made from scratch from the same rows (with the same projection): kept rows in
    their order, then the new ones."""
    ids, matrix = clustered(1200, dim=64)
    old = (
        ExactNeighbours(ids[:1000], matrix[:1000])
        if kind == "exact"
        else ScreenedNeighbours(ids[:1000], matrix[:1000], 16)
    )
    new_ids = [ids[5], ids[500], *ids[1000:1100]]  # two replaced, a hundred new
    new_matrix = clustered(len(new_ids), dim=64, seed=9)[1]
    dropped = {ids[7], ids[999], ids[5], ids[500]}
    updated = old.updated(dropped | set(new_ids), new_ids, new_matrix)
    rows = {i: v for i, v in zip(ids[:1000], matrix[:1000]) if i not in dropped} | dict(zip(new_ids, new_matrix))
    want = [i for i in ids[:1000] if i not in dropped] + new_ids
    made = (
        ExactNeighbours(want, np.vstack([rows[i] for i in want]))
        if kind == "exact"
        else ScreenedNeighbours(want, np.vstack([rows[i] for i in want]), 16, old.basis)
    )
    assert type(updated) is type(old) and updated.ids == made.ids and updated.position == made.position
    np.testing.assert_allclose(updated.matrix, made.matrix, atol=1e-6)
    if kind == "screened":
        assert updated.basis is old.basis
        np.testing.assert_allclose(updated.projected, made.projected, atol=1e-5)
        np.testing.assert_allclose(updated.left_out, made.left_out, atol=1e-4)
    queries = clustered(50, dim=64, seed=3)[1]
    assert [[i for i, _ in r] for r in updated.neighbours(queries, 10)] == [
        [i for i, _ in r] for r in made.neighbours(queries, 10)
    ]
    assert old.ids == ids[:1000] and len(old.matrix) == 1000  # the old one is untouched: searches may hold it
    emptied = old.updated(set(ids[:1000]), [], None)
    assert emptied.ids == [] and emptied.neighbours(queries[:1], 5) == [[]]


def test_a_merged_search_with_a_screened_delta_equals_exact_search_over_both():
    """The delta scores only what can beat the bulk's k-th best: the union's answer is unchanged."""
    ids, matrix = low_rank(3000)
    queries = low_rank(100, seed=5)[1]
    bulk = annoy(ids[:2400], matrix[:2400], search_k=100_000)  # every item seen: an exact bulk
    merged = MergedNeighbours(bulk, ScreenedNeighbours(ids[2400:], matrix[2400:], rank=16))
    exact = ExactNeighbours(ids, matrix)
    for options in ({}, {"exclude": [{ids[2400 + j]} for j in range(100)]}, {"allowed": set(ids[::2])}):
        found, expected = merged.neighbours(queries, 10, **options), exact.neighbours(queries, 10, **options)
        assert [[i for i, _ in r] for r in found] == [[i for i, _ in r] for r in expected]
        assert any(i in merged.delta.position for r in found for i, _ in r)  # the delta has its part in them


@pytest.mark.parametrize("backend", ["exact", "screened", "annoy"])
def test_filters_keep_k_allowed_items_even_when_few_pass(backend):
    ids, matrix = clustered(2000)
    index = backend_index(backend, ids, matrix)
    queries = clustered(20, seed=7)[1]
    for share in (0.5, 0.03):  # 3%: Annoy must widen its request
        allowed = set(ids[:: int(1 / share)])
        for query, ranked in zip(queries, index.neighbours(queries, 10, allowed=allowed)):
            expected = brute_force(ids, matrix, query, 10, keep=allowed.__contains__)
            assert len(ranked) == 10 and {i for i, _ in ranked} <= allowed
            overlap = len({i for i, _ in ranked} & {i for i, _ in expected})
            assert overlap == 10 if backend != "annoy" else overlap >= 8
    assert index.neighbours(queries, 10, allowed=set()) == [[] for _ in queries]
    few = set(ids[:7])
    assert {i for i, _ in index.neighbours(queries[0], 10, allowed=few)[0]} == few  # fewer than k pass: all of them


@pytest.mark.parametrize("backend", ["exact", "screened", "annoy"])
def test_exclusion_shared_and_per_query(backend):
    ids, matrix = clustered(500)
    index = backend_index(backend, ids, matrix)
    queries = matrix[[3, 40, 41]]
    own = index.neighbours(queries, 5, exclude=[{"i00003"}, {"i00040"}, {"i00041"}])
    assert [r[0][0] for r in index.neighbours(queries, 5)] == ["i00003", "i00040", "i00041"]  # itself first
    assert all(q not in {i for i, _ in r} for q, r in zip(("i00003", "i00040", "i00041"), own))
    assert all(len(r) == 5 for r in own)
    group = frozenset(ids[:250])  # e.g. every item of the query's brand
    shared = index.neighbours(queries, 5, exclude=group)
    assert all(len(r) == 5 and not {i for i, _ in r} & group for r in shared)
    per_query = index.neighbours(queries, 5, exclude=[group, {"i00040"}, group])
    assert per_query[0] == shared[0] and per_query[2] == shared[2] and per_query[1] == own[1]
    with pytest.raises(ValueError, match="one collection of item ids per query"):
        index.neighbours(queries, 5, exclude=["i00003", "i00040", "i00041"])


def test_an_exact_duplicate_is_found_and_the_query_itself_is_not():
    matrix = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    matrix[7] = matrix[3]
    ids = [f"d{j:02d}" for j in range(50)]
    found = ExactNeighbours(ids, matrix).neighbours(matrix, 5, exclude=[{i} for i in ids])
    assert all(i not in {c for c, _ in row} for i, row in zip(ids, found))
    assert found[3][0][0] == "d07" and found[7][0][0] == "d03"


@pytest.mark.parametrize("backend", ["exact", "annoy"])
def test_ties_are_broken_by_item_id(backend):
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(60, 16)).astype(np.float32)
    matrix[[50, 12, 33, 7, 21]] = matrix[0] * np.array([[1], [2], [3], [0.5], [4]], np.float32)  # same direction
    ids = [f"x{j:03d}" for j in range(60)]
    index = ExactNeighbours(ids, matrix) if backend == "exact" else annoy(ids, matrix)
    ranked = index.neighbours(matrix[0], 3, exclude={"x000"})[0]
    assert [i for i, _ in ranked] == ["x007", "x012", "x021"]  # five tie at cosine 1: lowest ids win
    assert all(s == pytest.approx(1.0, abs=1e-5) for _, s in ranked)


def hellinger(n: int, seed: int = 1) -> tuple[list[str], np.ndarray]:
    hists = np.random.default_rng(seed).random((n, 24)) ** 3
    return [f"h{j:04d}" for j in range(n)], np.sqrt(hists / hists.sum(axis=1, keepdims=True)).astype(np.float32)


def test_exact_chi_square_ranks_every_item_by_chi_square():
    ids, matrix = hellinger(400)
    allowed = set(ids[::2])
    ranked = ExactNeighbours(ids, matrix).neighbours(matrix[[0, 5]], 10, allowed, exclude={"h0000"}, distance="chi2")
    for q, row in zip((0, 5), ranked):
        distances = chi2_distances(matrix[q], matrix)
        order = [j for j in np.argsort(distances, kind="stable") if ids[j] in allowed and j != 0][:10]
        assert [i for i, _ in row] == [ids[j] for j in order]
        assert [s for _, s in row] == pytest.approx([-distances[j] for j in order], abs=1e-6)


@pytest.mark.parametrize("backend", ["rerank", "annoy"])
def test_chi_square_reranking_covers_the_true_top_10(backend):
    ids, matrix = hellinger(200)
    index = ExactNeighbours(ids, matrix, rerank=True) if backend == "rerank" else annoy(ids, matrix)
    for q, row in zip((0, 5), index.neighbours(matrix[[0, 5]], 10, exclude=[{ids[0]}, {ids[5]}], distance="chi2")):
        scores = [s for _, s in row]
        assert ids[q] not in {i for i, _ in row} and scores == sorted(scores, reverse=True)
        others = [j for j in range(200) if j != q]
        best = np.array(others)[np.argsort(chi2_distances(matrix[q], matrix[others]))[:10]]
        assert {i for i, _ in row} == {ids[j] for j in best}


def test_unknown_distance():
    ids, matrix = clustered(20)
    with pytest.raises(ValueError, match="unknown distance"):
        ExactNeighbours(ids, matrix).neighbours(matrix[0], 3, distance="manhattan")


@pytest.mark.parametrize("make", [ExactNeighbours, ScreenedNeighbours])
def test_each_searchs_excluded_set_is_the_one_left_out(make):
    """The positions of a large excluded set are kept for the next search excluding an equal set (each
    request's hidden and gone items); a search excluding another set leaves out that one."""
    ids, matrix = clustered(600, 160)
    index = make(ids, matrix)
    first, second = frozenset(ids[:300]), frozenset(ids[150:450])
    for excluded in (first, frozenset(ids[:300]), second, frozenset(ids[150:450]), first):
        found = index.neighbours(matrix[::50], 20, exclude=excluded)
        truth = ExactNeighbours([i for i in ids if i not in excluded], matrix[[i not in excluded for i in ids]])
        assert [[i for i, _ in r] for r in found] == [[i for i, _ in r] for r in truth.neighbours(matrix[::50], 20)]
