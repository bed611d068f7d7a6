"""Learnt methods: how much each signal counts, and a small head where it helps, from fields and labels.

A learnt (tuned) method ranks items by a weighted sum of cosine similarities, one per signal: each
base method (image methods such as efficientnet_lite0 and color_hist, text methods such as minilm),
the catalog's own fields where it has them (same brand, same gender, price ratio:
core/methods/field_signals.py) and, where it helps, a *head*: a linear map of every base's weighted
concatenation (titles' text included: the words that name a type or a colour are what photos blur)
to a smaller space, with *votes* when learnt from fields (the target values of each item's nearest
training items in the head's space and in each deep image base's, core/methods/heads.Votes: an item
with blank fields is matched by what its labelled look-alikes are; validation items never vote). The
head learns from catalog fields (items sharing every target value are positives: supervised
contrastive loss on the joint classes plus each target alone) and/or relevance labels (a
contrastive loss on judged pairs); it starts from the top principal directions of its input and
is kept near that start by an L2 penalty. The signal weights are then fitted by a pairwise
logistic loss (non-negative weights): on judged pairs plus random unjudged items as negatives
(labels), and on each query's best candidates by every signal, relevant when every target matches
(fields). The head is kept only when the weights with it rank the inner check's items better than
the weights without it; from labels alone, whose inner check holds too few judged queries to
choose or stop by, it trains a fixed number of epochs and is kept whenever it is weighted.

An uploaded photo has no text and looks unlike the catalog's packshots: it is ranked by the deep
image bases only (not colour histograms, which read a lifestyle photo's background, nor the
head), with their learnt weights (docs/benchmarks.md measures it on shopper photos).

Honest validation: items are split by a stable hash of their id; nothing learns from the
validation part (nor label pairs touching it). Early stopping and the head-or-not choice use an
inner hash split of the training items. Base (the bases fused with equal or given weights) vs
learnt P@10 on the validation part is reported per target, for the joint targets and for the
held-back labels; a method worse than its base is not saved unless forced. Storage and applying
live in core/methods/heads.py (NumPy only), so search does not need torch.

This module runs a tuning and keeps its result; the parts live beside it: tune_setup.py (options,
checks, the split, what it learns from), head_training.py (the head), signal_weights.py (the
weights, votes and photo weights) and tune_scores.py (P@k, label scores, validation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from core.catalog import activity
from core.catalog.db import Catalog
from core.curation.head_training import train_head
from core.curation.signal_weights import learn_weights, photo_weights, signal_blocks, voters
from core.curation.tune_scores import (
    K,
    LabelFigures,
    NotionFigures,
    label_scores,
    precision_at_k,
    validate,
    worse_than_base,
)
from core.curation.tune_setup import (
    TuneData,
    TuneError,
    TuneOptions,
    check_bases,
    check_name,
    class_codes,
    fusion_weights,
    gather,
    is_validation,
    judged_pairs,
    training_plan,
)
from core.methods.distances import unit
from core.methods.heads import HEAD, Head, Votes, save_head, votes_signal
from core.team.access import Action, require

__all__ = [
    "K",
    "LabelFigures",
    "NotionFigures",
    "SignalWeights",
    "TuneError",
    "TuneOptions",
    "TuneResult",
    "check_name",
    "class_codes",
    "is_validation",
    "judged_pairs",
    "label_scores",
    "precision_at_k",
    "tune",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignalWeights:
    """What a learnt method weighs each signal by: for item queries, and for photo queries (which have
    no title or catalog fields)."""

    item: dict[str, float]
    photo: dict[str, float]


@dataclass
class TuneResult:
    """What a tuning run did and how the learnt method did on items it never saw."""

    name: str
    bases: list[str]
    weights: list[float]  # the base fusion's weights (what "base" means below)
    targets: list[str]
    uses_labels: bool
    items_trained: int = 0
    items_validated: int = 0
    label_pairs_trained: int = 0
    label_pairs_held_back: int = 0
    metrics: dict[str, NotionFigures] = field(default_factory=dict)  # per target notion, base vs tuned P@10
    labels: LabelFigures | None = None  # the held-back labels, base vs tuned (none held back: None)
    signal_weights: SignalWeights = field(default_factory=lambda: SignalWeights({}, {}))
    head_kept: bool = False
    epochs: int = 0
    best_epoch: int = 0
    seconds: float = 0.0
    version: int | None = None
    saved: bool = False
    reason: str = ""
    trained_ids: list[str] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("trained_ids")
        labels = data.pop("labels")  # written inside `metrics`, as the "labels" entry
        if labels is not None:
            data["metrics"]["labels"] = labels
        data["seconds"] = round(self.seconds, 2)
        return data


def _head(data: TuneData, projection: np.ndarray | None, item: dict, photo: dict, votes: Sequence[Votes] = ()) -> Head:
    """A learnt method over `data`'s bases, every one of them in the head's input, with these signal weights
    (and the known values of the field signals that count)."""
    fields = {s: known for s, known in data.fields.items() if item.get(s, 0) > 0}
    return Head(
        "",
        0,
        data.bases,
        data.weights,
        data.dims,
        projection,
        data.kinds,
        item,
        photo,
        data.bases,
        [v for v in votes if item.get(votes_signal(v.source), 0) > 0],
        fields,
    )


def _learn(data: TuneData, metrics: list[str], options: TuneOptions, progress: bool, on_progress) -> tuple:
    """Train the head, fit the signal weights with and without it, keep the better on the inner check:
    (Head without name/version, epochs, best epoch, rows used, head kept)."""
    without, without_score = learn_weights(data, signal_blocks(data, None), options)
    if options.head == "never":
        item, photo = photo_weights(data, metrics, without, options)
        return _head(data, None, item, photo), 0, 0, training_plan(data).used.tolist(), False
    projection, epochs, best_epoch, used = train_head(data, options, progress, on_progress)
    if options.head == "only":
        return _head(data, projection, {HEAD: 1.0}, {HEAD: 1.0}), epochs, best_epoch, used, True
    # the weights are fitted on the inner items, so only the items the head learnt from vote there
    plan = training_plan(data)
    fit_votes = voters(data, projection, plan.fit_rows, metrics, options)
    with_head, with_score = learn_weights(data, signal_blocks(data, projection, fit_votes), options)
    # labels alone: the inner check is too small to choose by (see train_head); the held-back labels still gate saving
    chosen = with_score > without_score or not data.notions
    learnt = [HEAD, *(votes_signal(v.source) for v in fit_votes)]
    kept = options.head == "always" or (chosen and any(with_head.get(s, 0) > 0 for s in learnt))
    item, photo = photo_weights(data, metrics, with_head if kept else without, options)
    head = _head(
        data,
        projection if kept else None,
        item,
        photo,
        voters(data, projection, plan.train_rows, metrics, options) if kept else [],
    )
    log.info("tune: inner check %.4f with the head, %.4f without", with_score, without_score)
    return head, epochs, best_epoch, used, kept


def tune(
    db: Catalog,
    name: str,
    bases: list[str],
    targets: list[str] | None = None,
    use_labels: bool = False,
    weights: list[float] | None = None,
    force: bool = False,
    options: TuneOptions = TuneOptions(),
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> TuneResult:
    """Learn `name` over `bases` (signal weights, and a head where it helps), validate it on held-out
    items, save it as a new version unless it is worse than its base there (or `force`). Admins only."""
    require(Action.TUNE)
    check_name(name)
    kinds, metrics = check_bases(bases)
    targets = list(targets or [])
    weights = fusion_weights(bases, weights)
    started = time.perf_counter()
    data = gather(db, bases, kinds, weights, targets, use_labels, options)
    result = TuneResult(name, list(bases), weights, targets, use_labels)
    head, result.epochs, result.best_epoch, used, result.head_kept = _learn(
        data, metrics, options, progress, on_progress
    )
    head.name = name
    result.signal_weights = SignalWeights(head.item, head.photo)
    result.trained_ids = [data.ids[r] for r in used]
    result.items_trained = len(used)
    result.items_validated = int(data.validation.sum())
    train = ~data.validation
    result.label_pairs_trained = int((train[data.pairs[:, 0]] & train[data.pairs[:, 1]]).sum())
    result.label_pairs_held_back = int(data.validation[data.pairs[:, 0]].sum())
    validation = validate(data, unit(head.vectors(data.parts)))
    result.metrics, result.labels = validation.notions, validation.labels
    worse = worse_than_base(validation, data.joint)
    result.seconds = time.perf_counter() - started
    if worse and not force:
        result.reason = "not saved, worse than its base on held-out items: " + "; ".join(worse)
    else:
        result.saved = True
        result.reason = "saved" + (" (forced) although " + "; ".join(worse) if worse else "")
        result.version = save_head(db, head, targets, use_labels, result.as_dict())
    log.info("tune %s: %s", name, result.reason)
    activity.record(db, Action.TUNE, f"{name} over {', '.join(bases)}: {result.reason}")
    return result
