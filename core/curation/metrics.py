"""Measures per method from the team's verdicts: P@k, nDCG@k and MRR with 95% intervals, per
category and per rater, how much of each top k was judged, and a ranking that is fair to methods
judged less than others.

A catalog-item query is searched again with the method's current vectors and each of its top k
is looked up in the verdicts (a verdict counts whichever method showed the pair); unjudged
results are unknown, not wrong. Uploaded-photo queries cannot be searched again, so their lists
are the results as shown when they were labelled (rank <= k), as are a method's lists when it
has no vectors.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.catalog.db import Catalog
from core.catalog.vectors import methods_with_vectors
from core.curation.agreement import Agreement, agreement
from core.curation.grades import GRADES, Scoring, scoring
from core.curation.measures import Estimate, ListScore, mean_with_interval, precision_estimate, score_list
from core.curation.verdicts import Verdicts, read_verdicts
from core.search.queries import search_many
from core.search.space import MethodSpace, open_space

UPLOADS = "uploaded photos"  # the by-category group of queries that are uploaded photos
NO_CATEGORY = "(no category)"


@dataclass(frozen=True)
class RankedList:
    """One method's top k for one query: candidates by rank (None where it had no result)."""

    kind: str
    key: str
    group: str  # the query's category, or UPLOADS
    candidates: tuple[str | None, ...]

    def grades(self, known: dict[str, str]) -> list[str | None]:
        return [known.get(c) if c is not None else None for c in self.candidates]


@dataclass(frozen=True)
class Figures:
    """The measures of a set of lists: P@k (a close result counting its share), nDCG@k and MRR,
    each with a 95% interval; `queries` have at least one judged result, whose `unknown` results
    are reported apart; `grades` counts the judged results by grade."""

    queries: int
    judged: int
    unknown: int
    precision: Estimate
    ndcg: Estimate
    mrr: Estimate
    grades: dict[str, int]

    def as_dict(self) -> dict:
        return {
            "queries": self.queries,
            "labels": self.judged,
            "unknown": self.unknown,
            "precision_at_k": self.precision.value,
            "ndcg_at_k": self.ndcg.as_dict(),
            "mrr": self.mrr.as_dict(),
            "grades": self.grades,
        }


@dataclass
class MethodFigures:
    """A method's measures over every judged query, by category, and on the common ground."""

    method: str
    k: int
    figures: Figures
    by_category: dict[str, Figures]
    judged_share: float  # judged results / (lists x k): how much of its top k was judged
    lists: int
    comparable: bool  # judged_share reaches the scoring's min_judged
    metadata: tuple[float | None, float | None]  # same category, same colour among shown results
    rank: int | None = None  # on the common ground (see Ranking); None: not ranked
    common: Figures | None = None

    def as_dict(self) -> dict:
        f = self.figures
        return {
            "method": self.method,
            "k": self.k,
            "queries": f.queries,
            "labels": f.judged,
            "unknown": f.unknown,
            "precision_at_k": f.precision.value,
            "ci_low": f.precision.low,
            "ci_high": f.precision.high,
            "ndcg_at_k": f.ndcg.as_dict(),
            "mrr": f.mrr.as_dict(),
            "grades": f.grades,
            "judged_share": self.judged_share,
            "comparable": self.comparable,
            "rank": self.rank,
            "common_ground": self.common.as_dict() if self.common else None,
            "by_category": {category: c.as_dict() for category, c in sorted(self.by_category.items())},
            "metadata_precision": {"category": self.metadata[0], "colour": self.metadata[1]},
        }


@dataclass(frozen=True)
class Ranking:
    """Methods ranked by P@k (then nDCG@k) on the common ground: the queries whose top k is judged to
    at least `min_judged` for every comparable method, only judged results counting. A method with
    less than that share of its whole top k judged is not comparable and not ranked."""

    order: list[str]
    not_comparable: list[str]
    queries: int
    min_judged: float

    def rule(self) -> str:
        return (
            f"ranked by P@k, then nDCG@k, on the {self.queries} queries whose top k is at least "
            f"{self.min_judged:.0%} judged for every comparable method; a method with less than "
            f"{self.min_judged:.0%} of its top k judged is not comparable and not ranked"
        )

    def as_dict(self) -> dict:
        return {
            "order": self.order,
            "not_comparable": self.not_comparable,
            "queries": self.queries,
            "rule": self.rule(),
        }


@dataclass(frozen=True)
class RaterFigures:
    """One rater's measures of one method, from their own latest verdicts only."""

    rater: str
    method: str
    figures: Figures

    def as_dict(self) -> dict:
        return {"rater": self.rater, "method": self.method, **self.figures.as_dict()}


@dataclass(frozen=True)
class GapPair:
    """An unjudged result in a compared method's top k: judging it makes the methods comparable."""

    query_key: str
    candidate_id: str
    method: str
    rank: int


@dataclass
class Evaluation:
    """Everything `precision` reports: per method (and category), the ranking, per rater, agreement."""

    k: int
    scoring: Scoring
    verdict_rule: str
    methods: list[MethodFigures]
    ranking: Ranking
    raters: list[RaterFigures] = field(default_factory=list)
    agreement: Agreement | None = None
    gap: list[GapPair] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "k": self.k,
            "verdict_that_counts": self.verdict_rule,
            "scoring": {
                "gains": self.scoring.gains,
                "close_counts_as": self.scoring.close_share,
                "min_judged_share": self.scoring.min_judged,
            },
            "methods": [m.as_dict() for m in self.methods],
            "ranking": self.ranking.as_dict(),
            "raters": [r.as_dict() for r in self.raters],
            "agreement": self.agreement.as_dict() if self.agreement else None,
            "gap": len(self.gap),
        }


def precision_from_labels(db: Catalog, space: MethodSpace | None = None, k: int = 10) -> list[MethodFigures]:
    """Per method (or for one method's space): its measures over labelled queries."""
    return evaluate_labels(db, space, k, raters=False).methods


def evaluate_labels(
    db: Catalog,
    space: MethodSpace | None = None,
    k: int = 10,
    methods: Iterable[str] | None = None,
    raters: bool = True,
    chosen: Scoring | None = None,
) -> Evaluation:
    """Every measure per method (every method with vectors or labels, the given ones, or one space's)."""
    chosen = chosen or scoring()
    verdicts = read_verdicts(db)
    if not verdicts.counting:
        return Evaluation(k, chosen, verdicts.rule(), [], Ranking([], [], 0, chosen.min_judged))
    with_vectors = methods_with_vectors(db)
    if space is not None:
        names = [space.name]
    elif methods is not None:
        names = list(methods)
    else:
        names = sorted(set(with_vectors) | {r[0] for r in db.execute("SELECT DISTINCT method FROM labels")})
    meta = {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, category, colour FROM items")}
    known = verdicts.per_query()
    lists = {
        name: method_lists(
            db, space if space else open_space(db, name) if name in with_vectors else None, name, k, known
        )
        for name in names
    }
    figures = [_method_figures(name, k, lists[name], known, meta, chosen) for name in names]
    figures = [f for f in figures if f.figures.queries]
    ranking = _rank(figures, {f.method: lists[f.method] for f in figures}, known, k, chosen)
    evaluation = Evaluation(k, chosen, verdicts.rule(), figures, ranking, gap=pooled_gap(lists, known))
    if raters:
        evaluation.raters = _rater_figures(verdicts, lists, figures, k, chosen)
        evaluation.agreement = agreement(verdicts)
    return evaluation


def method_lists(
    db: Catalog, space: MethodSpace | None, name: str, k: int, known: dict[tuple[str, str], dict[str, str]]
) -> list[RankedList]:
    """A method's top k for every judged query: searched again for catalog items when it has
    vectors, as shown when labelled otherwise (and always for uploaded photos)."""
    categories = dict(db.execute("SELECT id, category FROM items"))
    items = sorted(key for kind, key in known if kind == "item")
    lists: list[RankedList] = []
    if space is not None and items:
        for query, hits in search_many(space, items, k):
            group = categories.get(query) or NO_CATEGORY
            lists.append(RankedList("item", query, group, tuple(h.item_id for h in hits)))
    else:
        lists += _shown(db, name, k, "item", categories)
    return lists + _shown(db, name, k, "upload", categories)


def _shown(db: Catalog, method: str, k: int, kind: str, categories: dict) -> list[RankedList]:
    """Lists as shown when labelled under `method`: the latest candidate labelled at each rank."""
    by_query: dict[str, dict[int, str]] = defaultdict(dict)
    for key, candidate, rank in db.execute(
        "SELECT query_key, candidate_id, rank FROM labels WHERE query_kind = ? AND method = ? AND rank <= ? "
        "ORDER BY created_at, id",
        (kind, method, k),
    ):
        by_query[key][rank] = candidate
    return [
        RankedList(
            kind,
            key,
            (categories.get(key) or NO_CATEGORY) if kind == "item" else UPLOADS,
            tuple(ranks.get(r) for r in range(1, k + 1)),
        )
        for key, ranks in sorted(by_query.items())
    ]


def score_lists(
    lists: Iterable[RankedList], known: dict[tuple[str, str], dict[str, str]], k: int, chosen: Scoring
) -> Figures:
    """The measures of `lists` against the verdicts `known` per query."""
    scores: list[ListScore] = []
    grades = dict.fromkeys(GRADES, 0)
    unknown = 0
    for ranked in lists:
        verdicts = known.get((ranked.kind, ranked.key), {})
        listed = ranked.grades(verdicts)
        score = score_list(listed, list(verdicts.values()), k, chosen)
        if not score.judged:
            continue
        scores.append(score)
        unknown += k - score.judged
        for g in listed:
            if g is not None:
                grades[g] += 1
    return Figures(
        queries=len(scores),
        judged=sum(s.judged for s in scores),
        unknown=unknown,
        precision=precision_estimate(scores),
        ndcg=mean_with_interval([s.ndcg for s in scores]),
        mrr=mean_with_interval([s.reciprocal_rank for s in scores]),
        grades=grades,
    )


def _method_figures(
    name: str, k: int, lists: list[RankedList], known: dict, meta: dict, chosen: Scoring
) -> MethodFigures:
    groups: dict[str, list[RankedList]] = defaultdict(list)
    for ranked in lists:
        groups[ranked.group].append(ranked)
    by_category = {group: score_lists(members, known, k, chosen) for group, members in groups.items()}
    judged = sum(_judged(r, known) for r in lists)
    share = judged / (len(lists) * k) if lists else 0.0
    return MethodFigures(
        method=name,
        k=k,
        figures=score_lists(lists, known, k, chosen),
        by_category={g: f for g, f in by_category.items() if f.queries},
        judged_share=share,
        lists=len(lists),
        comparable=share >= chosen.min_judged,
        metadata=_metadata(lists, known, meta),
    )


def _judged(ranked: RankedList, known: dict) -> int:
    verdicts = known.get((ranked.kind, ranked.key), {})
    return sum(1 for c in ranked.candidates if c is not None and c in verdicts)


def _metadata(lists: list[RankedList], known: dict, meta: dict) -> tuple[float | None, float | None]:
    """Among the shown results of judged catalog-item lists: the share with the query's category and colour."""
    shown = same_category = same_colour = 0
    for ranked in lists:
        if ranked.kind != "item" or not _judged(ranked, known):
            continue
        category, colour = meta.get(ranked.key, (None, None))
        for candidate in filter(None, ranked.candidates):
            found = meta.get(candidate, (None, None))
            shown += 1
            same_category += bool(category) and found[0] == category
            same_colour += bool(colour) and found[1] == colour
    return (same_category / shown, same_colour / shown) if shown else (None, None)


def _rank(
    figures: list[MethodFigures], lists: dict[str, list[RankedList]], known: dict, k: int, chosen: Scoring
) -> Ranking:
    """Rank the comparable methods on their common ground (see Ranking); set each one's rank."""
    comparable = [f for f in figures if f.comparable]
    common: set[tuple[str, str]] | None = None
    for f in comparable:
        covered = {(r.kind, r.key) for r in lists[f.method] if _judged(r, known) >= chosen.min_judged * k}
        common = covered if common is None else common & covered
    common = common or set()
    for f in comparable:
        f.common = score_lists([r for r in lists[f.method] if (r.kind, r.key) in common], known, k, chosen)
    ranked = sorted(
        (f for f in comparable if f.common and f.common.queries),
        key=_common_order,
    )
    for place, f in enumerate(ranked, start=1):
        f.rank = place
    return Ranking(
        [f.method for f in ranked], [f.method for f in figures if not f.comparable], len(common), chosen.min_judged
    )


def pooled_gap(lists: dict[str, list[RankedList]], known: dict) -> list[GapPair]:
    """The unjudged results of every compared method's catalog-item lists, pooled (each pair once),
    query by query, best ranks first."""
    seen: set[tuple[str, str]] = set()
    found = []
    for name, method_lists_ in lists.items():
        for ranked in method_lists_:
            if ranked.kind != "item":
                continue
            verdicts = known.get(("item", ranked.key), {})
            for rank, candidate in enumerate(ranked.candidates, start=1):
                if candidate is None or candidate in verdicts or (ranked.key, candidate) in seen:
                    continue
                seen.add((ranked.key, candidate))
                found.append(GapPair(ranked.key, candidate, name, rank))
    return sorted(found, key=lambda p: (p.query_key, p.rank, p.method))


def _common_order(f: MethodFigures) -> tuple[float, float, str]:
    """Best first on the common ground: P@k, then nDCG@k, then the name."""
    precision, ndcg = (f.common.precision.value, f.common.ndcg.value) if f.common else (None, None)
    return -(precision or 0), -(ndcg or 0), f.method


def _rater_figures(
    verdicts: Verdicts, lists: dict[str, list[RankedList]], figures: list[MethodFigures], k: int, chosen: Scoring
) -> list[RaterFigures]:
    found = []
    for rater in verdicts.raters():
        own = verdicts.per_query(verdicts.by_rater[rater])
        for f in figures:
            scored = score_lists(lists[f.method], own, k, chosen)
            if scored.queries:
                found.append(RaterFigures(rater, f.method, scored))
    return found
