"""How a learnt space ranks: P@k by shared values, held-back labels' AUC and judged P@k, the inner
check, and base against learnt on the validation items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.curation import evaluate
from core.curation.tune_setup import TuneData
from core.methods.distances import unit
from core.search.neighbours import nearest_rows

K = 10


def precision_at_k(
    matrix: np.ndarray, classes: np.ndarray, queries: np.ndarray, gallery: np.ndarray, k: int = K
) -> float:
    """Mean P@k of `queries` searching `gallery` (sorted row indices, queries among them), themselves
    excluded; relevant = same class; rows of class -1 (a value missing) take no part."""
    gallery = gallery[classes[gallery] >= 0]
    queries = queries[classes[queries] >= 0]
    if len(queries) == 0 or len(gallery) <= k:
        return float("nan")
    found = nearest_rows(matrix[gallery], np.searchsorted(gallery, queries), k)
    return evaluate.precision_at_k(evaluate.relevance(classes[gallery], found, np.searchsorted(gallery, queries)), k)


def label_scores(matrix: np.ndarray, pairs: np.ndarray, k: int = K) -> dict[str, float]:
    """Held-back labels (rows: query row, candidate row, relevant) in a space of unit vectors.

    auc: per query, the share of (relevant, not relevant) judged pairs ranked the right way
    round, averaged over queries that have both; judged_p10: per query, the share judged
    relevant among the judged items in its top k of the whole catalog (unjudged ones skipped).
    """
    aucs, precisions = [], []
    queries = np.unique(pairs[:, 0])
    for q, top in zip(queries, nearest_rows(matrix, queries, k)):
        mine = pairs[pairs[:, 0] == q]
        sims = matrix[mine[:, 1]] @ matrix[q]
        good, bad = sims[mine[:, 2] == 1], sims[mine[:, 2] == 0]
        if len(good) and len(bad):
            aucs.append(float((good[:, None] > bad[None, :]).mean() + 0.5 * (good[:, None] == bad[None, :]).mean()))
        verdict = dict(zip(mine[:, 1].tolist(), mine[:, 2].tolist()))
        judged = [verdict[c] for c in top.tolist() if c in verdict]
        if judged:
            precisions.append(float(np.mean(judged)))
    return {
        "auc": float(np.mean(aucs)) if aucs else float("nan"),
        "judged_p10": float(np.mean(precisions)) if precisions else float("nan"),
    }


def inner_score(
    z: np.ndarray, data: TuneData, train_rows: np.ndarray, inner_rows: np.ndarray, inner_pairs: np.ndarray
) -> float:
    scores = [precision_at_k(z, classes, inner_rows, train_rows) for classes in data.notions.values()]
    if len(inner_pairs):
        scores.append(label_scores(z, inner_pairs)["auc"])
    scores = [s for s in scores if not np.isnan(s)]
    return float(np.mean(scores)) if scores else 0.0


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(value, 4)


@dataclass(frozen=True)
class NotionFigures:
    """P@10 for one target notion on the validation items: base and tuned space, with the held-out items as
    the only gallery (`held_out`) and with the whole catalog as gallery (`catalog`), and each base alone
    (held-out gallery). None where it cannot be measured."""

    base_held_out: float | None
    base_catalog: float | None
    tuned_held_out: float | None
    tuned_catalog: float | None
    bases: dict[str, float | None]


@dataclass(frozen=True)
class LabelFigures:
    """The held-back labels (those whose query is a validation item): how many, and AUC and judged P@10
    in the base and the tuned space."""

    pairs: int
    queries: int
    base_auc: float | None
    base_judged_p10: float | None
    tuned_auc: float | None
    tuned_judged_p10: float | None


@dataclass(frozen=True)
class Validation:
    """Base vs tuned on the validation part: per target notion, and on the held-back labels if any."""

    notions: dict[str, NotionFigures]
    labels: LabelFigures | None


def validate(data: TuneData, tuned: np.ndarray) -> Validation:
    """Base vs tuned on the validation part: P@10 per notion (held-out and whole-catalog galleries, each
    base alone) and held-back labels."""
    val_rows, all_rows = np.where(data.validation)[0], np.arange(len(data.ids))
    spaces = {"base": data.base_space(), "tuned": tuned}
    notions = {}
    for notion, classes in data.notions.items():
        p10 = {
            (space, gallery_name): _rounded(precision_at_k(matrix, classes, val_rows, gallery))
            for space, matrix in spaces.items()
            for gallery_name, gallery in (("held_out", val_rows), ("catalog", all_rows))
        }
        notions[notion] = NotionFigures(
            base_held_out=p10["base", "held_out"],
            base_catalog=p10["base", "catalog"],
            tuned_held_out=p10["tuned", "held_out"],
            tuned_catalog=p10["tuned", "catalog"],
            bases={b: _rounded(precision_at_k(unit(data.parts[b]), classes, val_rows, val_rows)) for b in data.bases},
        )
    held = data.pairs[data.validation[data.pairs[:, 0]]]
    labels = None
    if len(held):
        base, tuned_scores = (label_scores(matrix, held) for matrix in spaces.values())
        labels = LabelFigures(
            pairs=int(len(held)),
            queries=int(len(np.unique(held[:, 0]))),
            base_auc=_rounded(base["auc"]),
            base_judged_p10=_rounded(base["judged_p10"]),
            tuned_auc=_rounded(tuned_scores["auc"]),
            tuned_judged_p10=_rounded(tuned_scores["judged_p10"]),
        )
    return Validation(notions, labels)


def worse_than_base(validation: Validation, joint: str | None) -> list[str]:
    """The gated comparisons where the tuned space lost to its base on validation."""
    checks = []
    if joint:
        figures = validation.notions[joint]
        checks += [
            (f"{joint} P@10 (held_out)", figures.base_held_out, figures.tuned_held_out),
            (f"{joint} P@10 (catalog)", figures.base_catalog, figures.tuned_catalog),
        ]
    if validation.labels is not None:
        checks.append(("held-back labels AUC", validation.labels.base_auc, validation.labels.tuned_auc))
    return [
        f"{what} {tuned:.3f} < base {base:.3f}"
        for what, base, tuned in checks
        if base is not None and tuned is not None and tuned < base
    ]
