"""Raters' agreement on good / close / wrong: Cohen's kappa for two, Fleiss' kappa for more, the
pairs they disagree on, and the pairs only one person judged (for a second opinion)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

from core.curation.grades import GRADES
from core.curation.verdicts import Pair, Verdicts


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters' grades on the same pairs; None when chance agreement is certain."""
    n = len(first)
    if n == 0 or n != len(second):
        return None
    observed = sum(a == b for a, b in zip(first, second)) / n
    a, b = Counter(first), Counter(second)
    chance = sum(a[g] * b[g] for g in GRADES) / (n * n)
    return None if chance == 1 else (observed - chance) / (1 - chance)


def fleiss_kappa(ratings: Sequence[Sequence[str]]) -> float | None:
    """Fleiss' kappa over pairs each judged by two or more raters (the number may vary by pair:
    each pair's agreement is over its own raters); None when chance agreement is certain."""
    rated = [Counter(r) for r in ratings if len(r) >= 2]
    if not rated:
        return None
    agreement = [
        (sum(c * c for c in counts.values()) - n) / (n * (n - 1)) for counts in rated for n in [sum(counts.values())]
    ]
    total = sum(sum(c.values()) for c in rated)
    shares = [sum(c[g] for c in rated) / total for g in GRADES]
    chance = sum(s * s for s in shares)
    mean = sum(agreement) / len(agreement)
    return None if chance == 1 else (mean - chance) / (1 - chance)


@dataclass(frozen=True)
class PairKappa:
    """Cohen's kappa of two raters over the pairs both judged."""

    first: str
    second: str
    pairs: int
    kappa: float | None


@dataclass(frozen=True)
class Disagreement:
    """A pair with conflicting verdicts: each rater's latest grade, and the one that counts."""

    pair: Pair
    grades: dict[str, str]
    counting: str


@dataclass
class Agreement:
    """Agreement on the pairs two or more raters judged."""

    raters: list[str]
    shared_pairs: int  # pairs judged by two or more raters
    kappa: float | None  # Cohen's for two raters, Fleiss' for more
    statistic: str  # "cohen", "fleiss" or "" (nothing to compare)
    pairwise: list[PairKappa] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "raters": self.raters,
            "shared_pairs": self.shared_pairs,
            "kappa": self.kappa,
            "statistic": self.statistic,
            "pairwise": [{"raters": [p.first, p.second], "pairs": p.pairs, "kappa": p.kappa} for p in self.pairwise],
            "disagreements": len(self.disagreements),
        }


def _by_pair(verdicts: Verdicts) -> dict[Pair, dict[str, str]]:
    found: dict[Pair, dict[str, str]] = {}
    for rater, pairs in sorted(verdicts.by_rater.items()):
        for pair, grade in pairs.items():
            found.setdefault(pair, {})[rater] = grade
    return found


def agreement(verdicts: Verdicts) -> Agreement:
    """Kappa over the pairs judged by two or more raters, pairwise kappas, and the disagreements."""
    shared = {pair: grades for pair, grades in _by_pair(verdicts).items() if len(grades) >= 2}
    raters = sorted({r for grades in shared.values() for r in grades})
    pairwise = []
    for first, second in combinations(raters, 2):
        both = [g for g in shared.values() if first in g and second in g]
        if both:
            kappa = cohen_kappa([g[first] for g in both], [g[second] for g in both])
            pairwise.append(PairKappa(first, second, len(both), kappa))
    if len(raters) == 2:
        kappa, statistic = pairwise[0].kappa, "cohen"
    elif raters:
        kappa, statistic = fleiss_kappa([list(g.values()) for g in shared.values()]), "fleiss"
    else:
        kappa, statistic = None, ""
    disagreements = [
        Disagreement(pair, grades, verdicts.counting[pair])
        for pair, grades in sorted(shared.items())
        if len(set(grades.values())) > 1
    ]
    return Agreement(raters, len(shared), kappa, statistic, pairwise, disagreements)


def second_opinion(verdicts: Verdicts, labeler: str) -> list[tuple[Pair, str, str]]:
    """Catalog-item pairs only one person judged, and not `labeler`: (pair, rater, their grade),
    query by query."""
    return [
        (pair, rater, grade)
        for pair, grades in sorted(_by_pair(verdicts).items())
        if pair[0] == "item" and len(grades) == 1
        for rater, grade in grades.items()
        if rater != labeler
    ]
