"""Learnt methods: how much each signal counts, and a small head where it helps, from fields and labels.

A learnt (tuned) method ranks items by a weighted sum of cosine similarities, one per signal: each
base method (image methods such as efficientnet_lite0 and color_hist, text methods such as minilm),
the catalog's own fields where it has them (same brand, same gender, price ratio:
core/methods/field_signals.py) and, where it helps, a *head*: a linear map of every base's weighted
concatenation (titles' text included: the words that name a type or a colour are what photos blur)
to a smaller space, with its *votes* when learnt from fields (the target values of each item's
nearest training items in the head's space, core/methods/heads.Votes: an item with blank fields is
matched by what its labelled look-alikes are; validation items never vote). The
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
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import sqlite_utils

from core.curation import evaluate
from core.curation.evaluate import joint_values
from core.methods.distances import unit, weighted_concat
from core.methods.field_signals import field_parts, field_values, vocabularies
from core.methods.heads import HEAD, VOTES, Head, HeadError, Votes, save_head, stored_bases
from core.search.neighbours import nearest_rows

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
K = 10


class TuneError(ValueError):
    """Input that cannot be tuned on, in one line."""


@dataclass(frozen=True)
class TuneOptions:
    """Head size and training knobs (the defaults are the ones benchmarks/tune_bench.py validated)."""

    dim: int = 128
    temperature: float = 0.2
    target_decay: float = 0.5  # each target alone is a task too, weighted 0.5, 0.25, ... in order
    anchor: float = 1e-3  # L2 pull of the map towards its start (targets)
    label_anchor: float = 1e-2  # ... when labels are used: they only speak about near neighbours
    random_negatives: int = 256  # unjudged training items added to each label batch as negatives
    query_batch: int = 64
    epochs: int = 60
    label_epochs: int = 30  # labels alone (no targets): the head trains min(epochs, label_epochs), no early stop
    patience: int = 6
    batch_size: int = 256
    learning_rate: float = 1e-3
    validation: float = 0.2
    inner: float = 0.1
    seed: int = 0
    candidates: int = 20  # per signal: each fields query's best candidates that make weight-fitting pairs
    pair_negatives: int = 20  # random unjudged items per query, as not relevant, when fitting weights
    weight_decay: float = 1e-3  # L2 penalty of the pairwise weight fit
    photo_floor: float = 0.02  # least item weight of a photo signal (so its block exists)
    catalog_fields: bool = True  # same brand, same gender, price ratio signals, where the catalog has them
    votes: int = 20  # fields: each item's nearest labelled training items whose fields vote (0: no votes signal)
    vote_temperature: float = 0.05
    voters: int = 20_000  # at most this many labelled training items vote (a random draw beyond)
    head: str = "auto"  # "auto": kept when the inner check says it helps (labels alone: when the weights
    # give it a share); "always"; "never" (weights only);
    # "only": the head alone (no other signal, photos through it too)

    def __post_init__(self) -> None:
        if self.dim < 1 or self.epochs < 1:
            raise TuneError("the head's size (dim) and its epochs must be at least 1")
        if self.head not in ("auto", "always", "never", "only"):
            raise TuneError(f"head must be auto, always, never or only, not {self.head!r}")


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
    metrics: dict = field(default_factory=dict)  # notion -> {"base_held_out": P@10, "tuned_held_out": ...}
    signal_weights: dict = field(default_factory=dict)  # {"item": {signal: w}, "photo": {...}}
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
        data["seconds"] = round(self.seconds, 2)
        return data


# --- names, bases, split ---------------------------------------------------------------------


def check_name(name: str) -> None:
    """A tuned name is a lower-case identifier that no built-in method uses."""
    from core.methods import list_methods

    if not NAME_PATTERN.match(name or ""):
        raise TuneError(f"tuned method name {name!r} must be 2-40 characters: a-z first, then a-z, 0-9 or _")
    if name in {m["name"] for m in list_methods()}:
        raise TuneError(f"{name!r} is a built-in method; choose another name for the tuned one")


def check_bases(bases: list[str]) -> tuple[list[str], list[str]]:
    """Bases are built-in image or text methods, at least one of them an image method (tuned ones are
    not bases: a learnt method over another would chain versions). Returns (kinds, metrics) per base."""
    from core.methods import UnknownMethod, get_spec

    if not bases:
        raise TuneError("name at least one base method")
    if len(set(bases)) != len(bases):
        raise TuneError("name each base method once")
    specs = []
    for base in bases:
        try:
            specs.append(get_spec(base))
        except UnknownMethod:
            raise TuneError(f"base {base!r} is not a built-in method; `python -m core methods` lists them") from None
    if not any(spec.kind == "image" for spec in specs):
        raise TuneError("name at least one image method among the bases (photos and items are searched by it)")
    return [spec.kind for spec in specs], [spec.metric for spec in specs]


def is_validation(item_id: str, fraction: float = 0.2, salt: str = "") -> bool:
    """Stable split: the first 32 bits of sha1(salt + id) below `fraction` of their range."""
    digest = hashlib.sha1((salt + str(item_id)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") < fraction * 2**32


# --- training data ---------------------------------------------------------------------------


def judged_pairs(db: sqlite_utils.Database) -> list[tuple[str, str, int]]:
    """(query item, candidate item, relevant) for the latest verdict of each labeller on each item pair."""
    return [
        tuple(r)
        for r in db.execute(
            "SELECT query_key, candidate_id, relevant FROM ("
            " SELECT query_key, candidate_id, relevant, row_number() OVER ("
            "  PARTITION BY query_key, candidate_id, labeler ORDER BY created_at DESC, id DESC) AS n"
            " FROM labels WHERE query_kind = 'item') WHERE n = 1 ORDER BY query_key, candidate_id"
        )
    ]


def class_codes(values: list[tuple | None]) -> np.ndarray:
    """Integer class per item (-1 when a value is missing)."""
    codes: dict = {}
    return np.array([-1 if v is None else codes.setdefault(v, len(codes)) for v in values], dtype=np.int64)


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


@dataclass
class _Data:
    ids: list[str]
    bases: list[str]
    kinds: list[str]
    dims: list[int]
    parts: dict[str, np.ndarray]  # base -> raw vectors (zeros: an item without that text)
    weights: list[float]  # the base fusion's weights, per base
    x: np.ndarray  # the head's input (every base's weighted concatenation)
    notions: dict[str, np.ndarray]  # target(s) -> class per item (-1: value missing)
    joint: str | None  # the notion whose classes are the positives
    pairs: np.ndarray  # (query row, candidate row, relevant)
    validation: np.ndarray  # bool per item
    inner: np.ndarray  # bool per item: training items kept for early stopping and choices
    fields: dict[str, list[str]] = field(default_factory=dict)  # catalog-field signal -> known values (parts too)

    @property
    def image_bases(self) -> list[str]:
        return [b for b, k in zip(self.bases, self.kinds) if k == "image"]

    def base_space(self) -> np.ndarray:
        """The untuned fusion: every base's unit vectors, weighted."""
        return unit(weighted_concat([self.parts[b] for b in self.bases], self.weights))


def _weights(bases: list[str], weights: list[float] | None) -> list[float]:
    weights = list(weights) if weights else [1.0] * len(bases)
    if len(weights) != len(bases) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise TuneError("base weights must be one non-negative number per base, not all zero")
    return [w / sum(weights) for w in weights]


def _label_rows(db: sqlite_utils.Database, ids: list[str], validation: np.ndarray) -> np.ndarray:
    row = {item_id: n for n, item_id in enumerate(ids)}
    pairs = np.array(
        [(row[q], row[c], r) for q, c, r in judged_pairs(db) if q in row and c in row and q != c], dtype=np.int64
    ).reshape(-1, 3)
    if not (~validation[pairs[:, 0]] & ~validation[pairs[:, 1]]).any():
        raise TuneError("no relevance labels between training items with vectors; label some results first")
    return pairs


def gather(
    db: sqlite_utils.Database,
    bases: list[str],
    kinds: list[str],
    weights: list[float],
    targets: list[str],
    use_labels: bool,
    options: TuneOptions,
) -> _Data:
    """Base vectors, target classes, label pairs and the hash splits, checked for usable input."""
    if not targets and not use_labels:
        raise TuneError("nothing to learn from: give targets (catalog fields) and/or use labels")
    try:
        ids, parts = stored_bases(db, bases, kinds)
    except HeadError as exc:
        raise TuneError(str(exc)) from None
    validation = np.array([is_validation(i, options.validation) for i in ids], dtype=bool)
    inner = np.array([is_validation(i, options.inner, salt="inner:") for i in ids], dtype=bool) & ~validation
    notions = {}
    for target in targets:
        notions[target] = class_codes(joint_values(db, ids, [target]))
        values = len(set(notions[target][~validation]) - {-1})
        if values < 2:
            raise TuneError(
                f"target {target!r} has {values} distinct value(s) among training items with vectors; "
                "it needs at least two"
            )
    joint = ",".join(targets) if targets else None
    if len(targets) > 1:
        notions[joint] = class_codes(joint_values(db, ids, targets))
    pairs = _label_rows(db, ids, validation) if use_labels else np.zeros((0, 3), dtype=np.int64)
    dims = [parts[b].shape[1] for b in bases]
    data = _Data(ids, bases, kinds, dims, parts, weights, np.zeros(0), notions, joint, pairs, validation, inner)
    data.x = weighted_concat([parts[b] for b in bases], weights)  # every base feeds the head, text too
    if options.catalog_fields:
        values = field_values(db, ids)
        data.fields = vocabularies(values, np.where(~validation)[0])
        data.parts |= field_parts(values, data.fields)
    return data


def _supcon(z, classes, temperature: float):
    """Supervised contrastive loss of unit rows `z` (anchors without a positive in the batch skipped)."""
    import torch

    sims = z @ z.T / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    positive = (classes[:, None] == classes[None, :]) & ~eye
    return _positives_loss(sims.masked_fill(eye, -1e9).log_softmax(dim=1), positive)


def _positives_loss(log_prob, positive):
    """Mean over rows with a positive of minus their positives' mean log probability."""
    count = positive.sum(dim=1)
    keep = count > 0
    if not keep.any():
        return log_prob.sum() * 0
    return -((log_prob * positive).sum(dim=1)[keep] / count[keep]).mean()


def _inner_score(
    z: np.ndarray, data: _Data, train_rows: np.ndarray, inner_rows: np.ndarray, inner_pairs: np.ndarray
) -> float:
    scores = [precision_at_k(z, classes, inner_rows, train_rows) for classes in data.notions.values()]
    if len(inner_pairs):
        scores.append(label_scores(z, inner_pairs)["auc"])
    scores = [s for s in scores if not np.isnan(s)]
    return float(np.mean(scores)) if scores else 0.0


def _batches(rows: np.ndarray, size: int, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`steps` batches of a fresh shuffle of `rows` (recycled when they run out)."""
    order = np.resize(rng.permutation(rows), steps * size)
    return [order[n * size : (n + 1) * size] for n in range(steps)]


def _label_loss(project, x, pairs: np.ndarray, queries: np.ndarray, extra: np.ndarray, temperature: float):
    """For each judged query: its relevant candidates against its not-relevant ones and `extra` items."""
    import torch

    mine = pairs[np.isin(pairs[:, 0], queries)]
    pool, where = np.unique(np.concatenate([mine[:, 1], extra]), return_inverse=True)
    where = where[: len(mine)]
    heads, head_where = np.unique(mine[:, 0], return_inverse=True)
    relevant = mine[:, 2] == 1
    positive = torch.zeros(len(heads), len(pool), dtype=torch.bool)
    positive[head_where[relevant], where[relevant]] = True
    itself = torch.from_numpy(heads[:, None] == pool[None, :]).to(x.device)
    heads_x, pool_x = (x[torch.from_numpy(rows).to(x.device)] for rows in (heads, pool))
    sims = project(heads_x) @ project(pool_x).T / temperature
    return _positives_loss(sims.masked_fill(itself, -1e9).log_softmax(dim=1), positive.to(x.device))


@dataclass
class _Plan:
    """Which rows and pairs the head trains on, and which the inner check keeps."""

    train_rows: np.ndarray
    inner_rows: np.ndarray
    fit_rows: np.ndarray
    item_rows: np.ndarray  # fit rows with every target value
    fit_pairs: np.ndarray
    inner_pairs: np.ndarray
    label_queries: np.ndarray
    used: np.ndarray  # rows the head learnt from or was checked on


def _plan(data: _Data) -> _Plan:
    train = ~data.validation
    fit = train & ~data.inner
    item_rows = np.where(fit & (data.notions[data.joint] >= 0))[0] if data.notions else np.zeros(0, np.int64)
    usable = train[data.pairs[:, 0]] & train[data.pairs[:, 1]]
    fit_pairs = data.pairs[usable & ~data.inner[data.pairs[:, 0]]]
    inner_pairs = data.pairs[usable & data.inner[data.pairs[:, 0]]]
    inner_rows = np.where(data.inner)[0]
    used = np.union1d(np.union1d(item_rows, fit_pairs[:, :2].ravel()), inner_rows)
    label_queries = np.unique(fit_pairs[fit_pairs[:, 2] == 1, 0])
    return _Plan(
        np.where(train)[0], inner_rows, np.where(fit)[0], item_rows, fit_pairs, inner_pairs, label_queries, used
    )


def _step_loss(project, x, weight, start, plan: _Plan, tasks, batches, rng, options: TuneOptions):
    """One optimisation step's loss: the anchor, the targets' contrastive terms, the labels' term."""
    item_batch, query_batch = batches
    anchor = options.label_anchor if len(plan.fit_pairs) else options.anchor
    loss = (weight - start).pow(2).sum() * anchor
    if item_batch is not None:
        rows = item_batch
        z = project(x[rows])
        for classes, task_weight in tasks:
            loss = loss + task_weight * _supcon(z, classes[rows], options.temperature)
    if query_batch is not None:
        extra = rng.choice(plan.fit_rows, min(options.random_negatives, len(plan.fit_rows)), replace=False)
        loss = loss + _label_loss(project, x, plan.fit_pairs, query_batch, extra, options.temperature)
    return loss


def train_head(
    data: _Data, options: TuneOptions, progress: bool = True, on_progress: Callable[[int, int], None] | None = None
) -> tuple[np.ndarray, int, int, list[int]]:
    """Fit the map on the training part: (projection, epochs run, best epoch, training rows used).

    It trains in float32 on the selected device (core.methods.devices: `--device`, else CUDA when present);
    the early-stopping ranking runs in NumPy on the CPU.
    """
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from core.methods import devices
    from core.methods.torch_utils import set_threads

    set_threads()
    device = devices.resolve()
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    plan = _plan(data)
    tasks = []
    if data.notions:
        singles = [t for t in data.notions if t != data.joint]
        tasks = [(torch.from_numpy(data.notions[data.joint]).to(device), 1.0)] + [
            (torch.from_numpy(data.notions[t]).to(device), options.target_decay ** (n + 1))
            for n, t in enumerate(singles)
        ]
    x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32)).to(device)
    dim = min(options.dim, x.shape[1])
    _, _, directions = torch.svd_lowrank(x[torch.from_numpy(plan.train_rows).to(device)], q=dim, niter=4)
    start = directions[:, :dim].contiguous()
    weight = torch.nn.Parameter(start.clone())
    optimiser = torch.optim.AdamW([weight], lr=options.learning_rate, weight_decay=0.0)

    def project(v):
        return F.normalize(v @ weight, dim=1)

    def score() -> float:
        with torch.no_grad():
            z = project(x).cpu().numpy()
        return _inner_score(z, data, plan.train_rows, plan.inner_rows, plan.inner_pairs)

    # Labels alone: the inner check holds a tenth of the judged queries, too few to stop early by
    # (docs/benchmarks.md, "Which queries to label"): train a fixed number of epochs and keep the last.
    stop_early = bool(data.notions)
    total = options.epochs if stop_early else min(options.epochs, options.label_epochs)
    best_score, best_weight, best_epoch, stale, epoch = (score() if stop_early else 0.0), start.clone(), 0, 0, 0
    steps = max(-(-len(plan.item_rows) // options.batch_size), -(-len(plan.label_queries) // options.query_batch), 1)
    bar = tqdm(total=total, desc="tune", unit=" epoch", disable=not progress)
    try:
        for epoch in range(1, total + 1):
            items = _batches(plan.item_rows, options.batch_size, steps, rng) if len(plan.item_rows) else []
            queries = _batches(plan.label_queries, options.query_batch, steps, rng) if len(plan.label_queries) else []
            for step in range(steps):
                batch = (
                    torch.from_numpy(items[step]).to(device) if items else None,
                    queries[step] if queries else None,
                )
                loss = _step_loss(project, x, weight, start, plan, tasks, batch, rng, options)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            bar.update()
            if on_progress:
                on_progress(epoch, total)
            if not stop_early:
                continue
            current = score()
            if current > best_score:
                best_score, best_weight, best_epoch, stale = current, weight.detach().clone(), epoch, 0
            else:
                stale += 1
            bar.set_postfix(inner=f"{current:.3f}", best=f"{best_score:.3f}")
            if stale >= options.patience:
                break
    finally:
        bar.close()
    if not stop_early:
        best_weight, best_epoch = weight.detach(), epoch
    return best_weight.cpu().numpy().astype(np.float32), epoch, best_epoch, plan.used.tolist()


# --- signal weights --------------------------------------------------------------------------


def signal_blocks(data: _Data, projection: np.ndarray | None, votes: Votes | None = None) -> dict[str, np.ndarray]:
    """Each signal's unit vectors for every item: the bases, the head when there is one, its votes."""
    blocks = {s: unit(data.parts[s]) for s in [*data.bases, *data.fields]}
    if projection is not None:
        blocks[HEAD] = unit(data.x @ projection)
        if votes is not None:
            blocks[VOTES] = votes(blocks[HEAD])
    return blocks


def voters(data: _Data, projection: np.ndarray, rows: np.ndarray, options: TuneOptions) -> Votes | None:
    """The fields of `rows` that have every target value, in the head's space (None: learnt without
    targets, or votes turned off). Notions: the joint targets, then each target, weighted as the head's
    tasks."""
    if not data.notions or options.votes < 1:
        return None
    rows = rows[data.notions[data.joint][rows] >= 0]
    if len(rows) > options.voters:
        rows = np.sort(np.random.default_rng(options.seed).choice(rows, options.voters, replace=False))
    singles = [t for t in data.notions if t != data.joint]
    notions = [data.joint, *singles]
    weights = [1.0] + [options.target_decay ** (n + 1) for n in range(len(singles))]
    codes = [class_codes(data.notions[n][rows].tolist()) for n in notions]  # among the voters only
    return Votes(
        unit(data.x[rows] @ projection),
        np.stack(codes, axis=1),
        [int(c.max()) + 1 for c in codes],
        [w / sum(weights) for w in weights],
        options.votes,
        options.vote_temperature,
    )


def _field_pairs(data: _Data, blocks: dict[str, np.ndarray], queries: np.ndarray, gallery: np.ndarray, options) -> list:
    """Each query's best `candidates` by every signal among `gallery`, plus random ones: relevant when
    every target matches."""
    classes = data.notions[data.joint]
    queries, gallery = queries[classes[queries] >= 0], gallery[classes[gallery] >= 0]
    rng = np.random.default_rng(options.seed)
    found = [nearest_rows(b[gallery], np.searchsorted(gallery, queries), options.candidates) for b in blocks.values()]
    pairs = []
    for n, q in enumerate(queries):
        mine = set(gallery[np.concatenate([f[n] for f in found])].tolist())
        mine |= set(rng.choice(gallery, min(options.pair_negatives, len(gallery)), replace=False).tolist()) - {q}
        pairs += [(q, c, int(classes[q] == classes[c])) for c in sorted(mine)]
    return pairs


def _label_pairs(data: _Data, pairs: np.ndarray, gallery: np.ndarray, options: TuneOptions) -> list:
    """Judged pairs plus, per judged query, random unjudged items of `gallery` as not relevant."""
    rng = np.random.default_rng(options.seed + 1)
    out = [tuple(p) for p in pairs.tolist()]
    for q in np.unique(pairs[:, 0]):
        judged = set(pairs[pairs[:, 0] == q, 1].tolist()) | {q}
        extra = rng.choice(gallery, min(options.pair_negatives + len(judged), len(gallery)), replace=False)
        out += [(q, c, 0) for c in extra.tolist() if c not in judged][: options.pair_negatives]
    return out


def fit_weights(features: np.ndarray, pairs: np.ndarray, decay: float, most: int = 50_000) -> np.ndarray:
    """Non-negative weights (sum 1) of the signals whose weighted sum ranks each query's relevant
    candidates above its other ones: a pairwise logistic loss on feature differences (at most `most`
    of them, sampled), L2 penalty, solved with bounds by L-BFGS-B."""
    from scipy.optimize import minimize

    differences = []
    for q in np.unique(pairs[:, 0]):
        mine = pairs[:, 0] == q
        good, bad = features[mine & (pairs[:, 2] == 1)], features[mine & (pairs[:, 2] == 0)]
        if len(good) and len(bad):
            differences.append((good[:, None, :] - bad[None, :, :]).reshape(-1, features.shape[1]))
    even = np.full(features.shape[1], 1 / features.shape[1])
    if not differences:
        return even
    d = np.vstack(differences).astype(np.float64)
    if len(d) > most:
        d = d[np.random.default_rng(0).choice(len(d), most, replace=False)]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = d @ w
        value = np.logaddexp(0, -z).mean() + decay * (w @ w) / 2
        gradient = -(d * (1 / (1 + np.exp(np.clip(z, -30, 30))))[:, None]).mean(0) + decay * w
        return float(value), gradient

    w = minimize(loss, even, jac=True, method="L-BFGS-B", bounds=[(0, None)] * len(even)).x
    return w / w.sum() if w.sum() > 0 else even


def _fused(blocks: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    names = [s for s, w in weights.items() if w > 0]
    return unit(weighted_concat([blocks[s] for s in names], [weights[s] for s in names]))


def learn_weights(data: _Data, blocks: dict[str, np.ndarray], options: TuneOptions) -> tuple[dict[str, float], float]:
    """Signal weights from the training part (the inner items for fields when a head learnt from the
    others), with their inner check's score."""
    plan = _plan(data)
    pairs = []
    if data.notions:
        queries = plan.inner_rows if HEAD in blocks else plan.train_rows[:: max(1, len(plan.train_rows) // 400)]
        pairs += _field_pairs(data, blocks, queries, plan.train_rows, options)
    if len(plan.fit_pairs):
        pairs += _label_pairs(data, plan.fit_pairs, plan.fit_rows, options)
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 3)
    features = np.stack([(b[pairs[:, 0]] * b[pairs[:, 1]]).sum(1) for b in blocks.values()], axis=1)
    weights = dict(zip(blocks, fit_weights(features, pairs, options.weight_decay).tolist()))
    return weights, _inner_score(_fused(blocks, weights), data, plan.train_rows, plan.inner_rows, plan.inner_pairs)


def photo_weights(data: _Data, metrics: list[str], item: dict[str, float], options: TuneOptions) -> tuple[dict, dict]:
    """(item weights, photo weights): photos use the deep image bases (not colour histograms, nor the
    head), weighted as for items; each gets at least `photo_floor` of the item weight so it has a block."""
    deep = [
        b
        for b, m in zip(data.image_bases, [m for m, k in zip(metrics, data.kinds) if k == "image"])
        if m != "hellinger"
    ]
    chosen = deep or data.image_bases
    item = {s: max(w, options.photo_floor) if s in chosen else w for s, w in item.items()}
    item = {s: w / sum(item.values()) for s, w in item.items()}
    total = sum(item[s] for s in chosen)
    return item, {s: item[s] / total for s in chosen}


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(value, 4)


def validate(data: _Data, tuned: np.ndarray) -> dict:
    """Base vs tuned on the validation part: P@10 per notion with the held-out items as the only
    gallery (`held_out`) and with the whole catalog as gallery (`catalog`), each base alone on the
    held-out items (`bases`), and held-back labels."""
    val_rows, all_rows = np.where(data.validation)[0], np.arange(len(data.ids))
    spaces = {"base": data.base_space(), "tuned": tuned}
    metrics = {}
    for notion, classes in data.notions.items():
        metrics[notion] = {
            f"{space}_{gallery_name}": _rounded(precision_at_k(matrix, classes, val_rows, gallery))
            for space, matrix in spaces.items()
            for gallery_name, gallery in (("held_out", val_rows), ("catalog", all_rows))
        }
        metrics[notion]["bases"] = {
            b: _rounded(precision_at_k(unit(data.parts[b]), classes, val_rows, val_rows)) for b in data.bases
        }
    held = data.pairs[data.validation[data.pairs[:, 0]]]
    if len(held):
        metrics["labels"] = {"pairs": int(len(held)), "queries": int(len(np.unique(held[:, 0])))}
        for space, matrix in spaces.items():
            for metric, value in label_scores(matrix, held).items():
                metrics["labels"][f"{space}_{metric}"] = _rounded(value)
    return metrics


def _worse(metrics: dict, joint: str | None) -> list[str]:
    """The gated comparisons where the tuned space lost to its base on validation."""
    checks = []
    if joint:
        checks += [
            (f"{joint} P@10 ({g})", metrics[joint][f"base_{g}"], metrics[joint][f"tuned_{g}"])
            for g in ("held_out", "catalog")
        ]
    if "labels" in metrics:
        checks.append(("held-back labels AUC", metrics["labels"]["base_auc"], metrics["labels"]["tuned_auc"]))
    return [
        f"{what} {tuned:.3f} < base {base:.3f}"
        for what, base, tuned in checks
        if base is not None and tuned is not None and tuned < base
    ]


def _head(data: _Data, projection: np.ndarray | None, item: dict, photo: dict, votes: Votes | None = None) -> Head:
    """A learnt method over `data`'s bases, every one of them in the head's input, with these signal weights
    (and the known values of the field signals that count)."""
    fields = {s: known for s, known in data.fields.items() if item.get(s, 0) > 0}
    return Head(
        "", 0, data.bases, data.weights, data.dims, projection, data.kinds, item, photo, data.bases, votes, fields
    )


def _learn(data: _Data, metrics: list[str], options: TuneOptions, progress: bool, on_progress) -> tuple:
    """Train the head, fit the signal weights with and without it, keep the better on the inner check:
    (Head without name/version, epochs, best epoch, rows used, head kept)."""
    without, without_score = learn_weights(data, signal_blocks(data, None), options)
    if options.head == "never":
        item, photo = photo_weights(data, metrics, without, options)
        return _head(data, None, item, photo), 0, 0, _plan(data).used.tolist(), False
    projection, epochs, best_epoch, used = train_head(data, options, progress, on_progress)
    if options.head == "only":
        return _head(data, projection, {HEAD: 1.0}, {HEAD: 1.0}), epochs, best_epoch, used, True
    # the weights are fitted on the inner items, so only the items the head learnt from vote there
    plan = _plan(data)
    fit_votes = voters(data, projection, plan.fit_rows, options)
    with_head, with_score = learn_weights(data, signal_blocks(data, projection, fit_votes), options)
    # labels alone: the inner check is too small to choose by (see train_head); the held-back labels still gate saving
    chosen = with_score > without_score or not data.notions
    kept = options.head == "always" or (chosen and (with_head.get(HEAD, 0) > 0 or with_head.get(VOTES, 0) > 0))
    item, photo = photo_weights(data, metrics, with_head if kept else without, options)
    head = _head(
        data,
        projection if kept else None,
        item,
        photo,
        voters(data, projection, plan.train_rows, options) if kept else None,
    )
    log.info("tune: inner check %.4f with the head, %.4f without", with_score, without_score)
    return head, epochs, best_epoch, used, kept


def tune(
    db: sqlite_utils.Database,
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
    items, save it as a new version unless it is worse than its base there (or `force`)."""
    check_name(name)
    kinds, metrics = check_bases(bases)
    targets = list(targets or [])
    weights = _weights(bases, weights)
    started = time.perf_counter()
    data = gather(db, bases, kinds, weights, targets, use_labels, options)
    result = TuneResult(name, list(bases), weights, targets, use_labels)
    head, result.epochs, result.best_epoch, used, result.head_kept = _learn(
        data, metrics, options, progress, on_progress
    )
    head.name = name
    result.signal_weights = {"item": head.item, "photo": head.photo}
    result.trained_ids = [data.ids[r] for r in used]
    result.items_trained = len(used)
    result.items_validated = int(data.validation.sum())
    train = ~data.validation
    result.label_pairs_trained = int((train[data.pairs[:, 0]] & train[data.pairs[:, 1]]).sum())
    result.label_pairs_held_back = int(data.validation[data.pairs[:, 0]].sum())
    result.metrics = validate(data, unit(head.vectors(data.parts)))
    worse = _worse(result.metrics, data.joint)
    result.seconds = time.perf_counter() - started
    if worse and not force:
        result.reason = "not saved, worse than its base on held-out items: " + "; ".join(worse)
    else:
        result.saved = True
        result.reason = "saved" + (" (forced) although " + "; ".join(worse) if worse else "")
        result.version = save_head(db, head, targets, use_labels, result.as_dict())
    log.info("tune %s: %s", name, result.reason)
    return result
