"""Tuned methods: a small learnt head over frozen base methods' stored vectors.

The head sees each base vector L2-normalised and scaled by √weight, concatenated (as `hybrid`
does), and maps it linearly to a smaller space (then L2-normalised). It learns from catalog
fields (items sharing every target value are positives: supervised contrastive loss on the
joint classes plus each target alone) and/or relevance labels (a logistic loss on the cosine
of judged pairs). The map starts from the top principal directions of the training vectors
(so it starts close to the base ranking) and is kept near that start by an L2 penalty.

Honest validation: items are split by a stable hash of their id; the head never sees the
validation part (nor label pairs touching it). Early stopping uses an inner hash split of the
training items. Base vs tuned P@10 on the validation part is reported per target, for the
joint targets and for the held-back labels; a head worse than its base is not saved unless
forced. Applying a head is pure NumPy (`apply_head`), so search does not need torch.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import sqlite_utils

from core.catalog.vectors import load_matrix, missing_vectors
from core.curation import evaluate
from core.curation.evaluate import joint_values
from core.methods.distances import unit, weighted_concat
from core.search.neighbours import nearest_rows

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
K = 10


class TuneError(ValueError):
    """Input that cannot be tuned on, in one line."""


@dataclass(frozen=True)
class Settings:
    """Head size and training knobs (the defaults are the ones benchmarks/tune_bench.py validated)."""

    dim: int = 128
    temperature: float = 0.1
    target_decay: float = 0.5  # each target alone is a task too, weighted 0.5, 0.25, ... in order
    anchor: float = 1e-3  # L2 pull of the map towards its start (targets)
    label_anchor: float = 1e-2  # ... when labels are used: they only speak about near neighbours
    random_negatives: int = 256  # unjudged training items added to each label batch as negatives
    query_batch: int = 64
    epochs: int = 60
    patience: int = 6
    batch_size: int = 256
    learning_rate: float = 1e-3
    validation: float = 0.2
    inner: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dim < 1 or self.epochs < 1:
            raise TuneError("the head's size (dim) and its epochs must be at least 1")


@dataclass
class Head:
    """A saved head: how to build its input from the bases, and the map."""

    name: str
    version: int
    bases: list[str]
    weights: list[float]
    dims: list[int]
    projection: np.ndarray  # (sum(dims), dim) float32

    def project(self, x: np.ndarray) -> np.ndarray:
        """Unit tuned vectors from the head's input (see `base_input`)."""
        return unit_rows(x @ self.projection).astype(np.float32)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            projection=self.projection.astype(np.float32),
            dims=np.asarray(self.dims, dtype=np.int64),
            weights=np.asarray(self.weights, dtype=np.float64),
        )
        return buffer.getvalue()

    @classmethod
    def from_row(cls, row: dict) -> Head:
        with np.load(io.BytesIO(row["head"]), allow_pickle=False) as arrays:
            return cls(
                row["name"],
                row["version"],
                json.loads(row["bases"]),
                arrays["weights"].tolist(),
                arrays["dims"].tolist(),
                arrays["projection"].astype(np.float32),
            )


@dataclass
class TuneResult:
    """What a tuning run did and how the head did on items it never saw."""

    name: str
    bases: list[str]
    weights: list[float]
    targets: list[str]
    uses_labels: bool
    items_trained: int = 0
    items_validated: int = 0
    label_pairs_trained: int = 0
    label_pairs_held_back: int = 0
    metrics: dict = field(default_factory=dict)  # notion -> {"base": P@10, "tuned": P@10}
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


# --- names, split, storage -------------------------------------------------------------------


def check_name(name: str) -> None:
    """A tuned name is a lower-case identifier that no built-in method uses."""
    from core.methods import list_methods

    if not NAME_PATTERN.match(name or ""):
        raise TuneError(f"tuned method name {name!r} must be 2-40 characters: a-z first, then a-z, 0-9 or _")
    if name in {m["name"] for m in list_methods()}:
        raise TuneError(f"{name!r} is a built-in method; choose another name for the tuned one")


def check_bases(bases: list[str]) -> None:
    """Bases are built-in image methods (not tuned ones: a head over a head would chain versions)."""
    from core.methods import UnknownMethod, get_spec

    if not bases:
        raise TuneError("name at least one base method")
    for base in bases:
        try:
            kind = get_spec(base).kind
        except UnknownMethod:
            raise TuneError(f"base {base!r} is not a built-in method; `python -m core methods` lists them") from None
        if kind != "image":
            raise TuneError(f"base {base!r} is a {kind} method; a tuned method's bases are image methods")


def is_validation(item_id: str, fraction: float = 0.2, salt: str = "") -> bool:
    """Stable split: the first 32 bits of sha1(salt + id) below `fraction` of their range."""
    digest = hashlib.sha1((salt + str(item_id)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") < fraction * 2**32


def latest_rows(db: sqlite_utils.Database, name: str | None = None) -> list[dict]:
    """The current (latest saved) version's row of every tuned method, or of just `name`, by name."""
    return list(
        db.query(
            "SELECT * FROM tuned_methods t WHERE version = (SELECT max(version) FROM tuned_methods WHERE name = t.name)"
            + (" AND name = ?" if name is not None else "")
            + " ORDER BY name",
            [] if name is None else [name],
        )
    )


def current_head(db: sqlite_utils.Database, name: str) -> Head | None:
    """The latest saved version of a tuned method, or None."""
    rows = latest_rows(db, name)
    return Head.from_row(rows[0]) if rows else None


def tuned_names(db: sqlite_utils.Database) -> dict[str, int]:
    """Tuned method name -> its current version."""
    return dict(db.execute("SELECT name, max(version) FROM tuned_methods GROUP BY name").fetchall())


def _save(db: sqlite_utils.Database, head: Head, targets: list[str], uses_labels: bool, record: dict) -> int:
    with db.conn:
        version = db.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM tuned_methods WHERE name = ?", [head.name]
        ).fetchone()[0]
        record = {**record, "version": version, "saved": True}
        db.conn.execute(
            "INSERT INTO tuned_methods (name, version, bases, base_weights, targets, uses_labels, dim, head, record) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                head.name,
                version,
                json.dumps(head.bases),
                json.dumps(head.weights),
                json.dumps(targets),
                int(uses_labels),
                int(head.projection.shape[1]),
                head.to_bytes(),
                json.dumps(record),
            ),
        )
    return version


# --- applying a head (NumPy only) ------------------------------------------------------------


unit_rows = unit  # rows at unit length (core/methods/distances.py)
base_input = weighted_concat  # the head's input: each base unit-length, scaled by √weight, side by side (as hybrid)


def apply_head(head: Head, base_matrix: np.ndarray) -> np.ndarray:
    """Tuned unit-length float32 vectors from the bases' raw vectors concatenated in `head.bases` order."""
    edges = np.cumsum([0, *head.dims])
    parts = [base_matrix[:, a:b] for a, b in zip(edges[:-1], edges[1:])]
    return head.project(base_input(parts, head.weights))


def aligned_bases(db: sqlite_utils.Database, bases: list[str]) -> tuple[list[str], list[np.ndarray]]:
    """Items having a vector for every base, and each base's matrix in that item order."""
    loaded = [load_matrix(db, base) for base in bases]
    for base, (ids, _) in zip(bases, loaded):
        if not ids:
            raise TuneError(missing_vectors(base))
    common = set(loaded[0][0]).intersection(*(set(ids) for ids, _ in loaded[1:]))
    ids = sorted(common)
    parts = []
    for base_ids, matrix in loaded:
        row = {item_id: n for n, item_id in enumerate(base_ids)}
        parts.append(matrix[[row[i] for i in ids]])
    return ids, parts


def tuned_vectors(db: sqlite_utils.Database, name: str) -> tuple[list[str], np.ndarray, list[str]]:
    """Every item's tuned vector from the stored base vectors: (ids, matrix, ids lacking a base vector)."""
    head = current_head(db, name)
    if head is None:
        raise TuneError(f"no tuned method {name!r}; run `python -m core tune --name {name} --base ...` first")
    ids, parts = aligned_bases(db, head.bases)
    if any(p.shape[1] != d for p, d in zip(parts, head.dims)):
        raise TuneError(
            f"the stored vectors of {', '.join(head.bases)} changed size since {name} was tuned; tune it again"
        )
    have = set(ids)
    missing = [i for (i,) in db.execute("SELECT id FROM items ORDER BY id") if i not in have]
    return ids, apply_head(head, np.hstack(parts)), missing


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
    dims: list[int]
    x: np.ndarray  # the head's input (weighted concatenated bases)
    notions: dict[str, np.ndarray]  # target(s) -> class per item (-1: value missing)
    joint: str | None  # the notion whose classes are the positives
    pairs: np.ndarray  # (query row, candidate row, relevant)
    validation: np.ndarray  # bool per item
    inner: np.ndarray  # bool per item: training items kept for early stopping


def _weights(bases: list[str], weights: list[float] | None) -> list[float]:
    weights = list(weights) if weights else [1.0] * len(bases)
    if len(weights) != len(bases) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise TuneError("base weights must be one non-negative number per base, not all zero")
    return [w / sum(weights) for w in weights]


def gather(
    db: sqlite_utils.Database,
    bases: list[str],
    weights: list[float],
    targets: list[str],
    use_labels: bool,
    settings: Settings,
) -> _Data:
    """Base vectors, target classes, label pairs and the hash splits, checked for usable input."""
    if not targets and not use_labels:
        raise TuneError("nothing to learn from: give targets (catalog fields) and/or use labels")
    ids, parts = aligned_bases(db, bases)
    validation = np.array([is_validation(i, settings.validation) for i in ids], dtype=bool)
    inner = np.array([is_validation(i, settings.inner, salt="inner:") for i in ids], dtype=bool) & ~validation
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
    pairs = np.zeros((0, 3), dtype=np.int64)
    if use_labels:
        row = {item_id: n for n, item_id in enumerate(ids)}
        pairs = np.array(
            [(row[q], row[c], r) for q, c, r in judged_pairs(db) if q in row and c in row and q != c], dtype=np.int64
        ).reshape(-1, 3)
        if not (~validation[pairs[:, 0]] & ~validation[pairs[:, 1]]).any():
            raise TuneError("no relevance labels between training items with vectors; label some results first")
    return _Data(ids, [p.shape[1] for p in parts], base_input(parts, weights), notions, joint, pairs, validation, inner)


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


def train_head(
    data: _Data, settings: Settings, progress: bool = True, on_progress: Callable[[int, int], None] | None = None
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

    def on_device(array: np.ndarray):
        return torch.from_numpy(array).to(device)

    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    train = ~data.validation
    train_rows, inner_rows = np.where(train)[0], np.where(data.inner)[0]
    fit = train & ~data.inner
    fit_rows = np.where(fit)[0]
    tasks, item_rows = [], np.zeros(0, dtype=np.int64)
    if data.notions:
        singles = [t for t in data.notions if t != data.joint]
        tasks = [(on_device(data.notions[data.joint]), 1.0)] + [
            (on_device(data.notions[t]), settings.target_decay ** (n + 1)) for n, t in enumerate(singles)
        ]
        item_rows = np.where(fit & (data.notions[data.joint] >= 0))[0]
    usable = train[data.pairs[:, 0]] & train[data.pairs[:, 1]]
    fit_pairs = data.pairs[usable & ~data.inner[data.pairs[:, 0]]]
    inner_pairs = data.pairs[usable & data.inner[data.pairs[:, 0]]]
    label_queries = np.unique(fit_pairs[fit_pairs[:, 2] == 1, 0])
    used = np.union1d(np.union1d(item_rows, fit_pairs[:, :2].ravel()), inner_rows)
    anchor = settings.label_anchor if len(fit_pairs) else settings.anchor

    x = on_device(np.ascontiguousarray(data.x, dtype=np.float32))
    dim = min(settings.dim, x.shape[1])
    _, _, directions = torch.svd_lowrank(x[on_device(train_rows)], q=dim, niter=4)
    start = directions[:, :dim].contiguous()
    weight = torch.nn.Parameter(start.clone())
    optimiser = torch.optim.AdamW([weight], lr=settings.learning_rate, weight_decay=0.0)

    def project(v):
        return F.normalize(v @ weight, dim=1)

    def score() -> float:
        with torch.no_grad():
            return _inner_score(project(x).cpu().numpy(), data, train_rows, inner_rows, inner_pairs)

    best_score, best_weight, best_epoch, stale, epoch = score(), start.clone(), 0, 0, 0
    steps = max(-(-len(item_rows) // settings.batch_size), -(-len(label_queries) // settings.query_batch), 1)
    bar = tqdm(total=settings.epochs, desc="tune", unit=" epoch", disable=not progress)
    try:
        for epoch in range(1, settings.epochs + 1):
            item_batches = _batches(item_rows, settings.batch_size, steps, rng) if len(item_rows) else []
            query_batches = _batches(label_queries, settings.query_batch, steps, rng) if len(label_queries) else []
            for step in range(steps):
                loss = (weight - start).pow(2).sum() * anchor
                if item_batches:
                    rows = on_device(item_batches[step])
                    z = project(x[rows])
                    for classes, task_weight in tasks:
                        loss = loss + task_weight * _supcon(z, classes[rows], settings.temperature)
                if query_batches:
                    extra = rng.choice(fit_rows, min(settings.random_negatives, len(fit_rows)), replace=False)
                    loss = loss + _label_loss(project, x, fit_pairs, query_batches[step], extra, settings.temperature)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            current = score()
            if current > best_score:
                best_score, best_weight, best_epoch, stale = current, weight.detach().clone(), epoch, 0
            else:
                stale += 1
            bar.update()
            bar.set_postfix(inner=f"{current:.3f}", best=f"{best_score:.3f}")
            if on_progress:
                on_progress(epoch, settings.epochs)
            if stale >= settings.patience:
                break
    finally:
        bar.close()
    return best_weight.cpu().numpy().astype(np.float32), epoch, best_epoch, used.tolist()


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(value, 4)


def validate(data: _Data, tuned: np.ndarray) -> dict:
    """Base vs tuned on the validation part: P@10 per notion with the held-out items as the only
    gallery (`held_out`) and with the whole catalog as gallery (`catalog`), and held-back labels."""
    val_rows, all_rows = np.where(data.validation)[0], np.arange(len(data.ids))
    spaces = {"base": unit_rows(data.x), "tuned": tuned}
    metrics = {}
    for notion, classes in data.notions.items():
        metrics[notion] = {
            f"{space}_{gallery_name}": _rounded(precision_at_k(matrix, classes, val_rows, gallery))
            for space, matrix in spaces.items()
            for gallery_name, gallery in (("held_out", val_rows), ("catalog", all_rows))
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


def tune(
    db: sqlite_utils.Database,
    name: str,
    bases: list[str],
    targets: list[str] | None = None,
    use_labels: bool = False,
    weights: list[float] | None = None,
    force: bool = False,
    settings: Settings = Settings(),
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> TuneResult:
    """Learn a head for `name` over `bases`, validate it on held-out items, save it as a new version
    unless it is worse than its base there (or `force`)."""
    check_name(name)
    check_bases(bases)
    targets = list(targets or [])
    weights = _weights(bases, weights)
    started = time.perf_counter()
    data = gather(db, bases, weights, targets, use_labels, settings)
    result = TuneResult(name, list(bases), weights, targets, use_labels)
    projection, result.epochs, result.best_epoch, used = train_head(data, settings, progress, on_progress)
    result.trained_ids = [data.ids[r] for r in used]
    result.items_trained = len(used)
    result.items_validated = int(data.validation.sum())
    train = ~data.validation
    result.label_pairs_trained = int((train[data.pairs[:, 0]] & train[data.pairs[:, 1]]).sum())
    result.label_pairs_held_back = int(data.validation[data.pairs[:, 0]].sum())
    head = Head(name, 0, list(bases), weights, data.dims, projection)
    result.metrics = validate(data, head.project(data.x))
    worse = _worse(result.metrics, data.joint)
    result.seconds = time.perf_counter() - started
    if worse and not force:
        result.reason = "not saved, worse than its base on held-out items: " + "; ".join(worse)
    else:
        result.saved = True
        result.reason = "saved" + (" (forced) although " + "; ".join(worse) if worse else "")
        result.version = _save(db, head, targets, use_labels, result.as_dict())
    log.info("tune %s: %s", name, result.reason)
    return result
