"""How much each signal counts: the signals' blocks (bases, field signals, head, votes), pairs to fit
on, the non-negative pairwise logistic fit, and the photo weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.curation.tune_scores import inner_score
from core.curation.tune_setup import TuneData, TuneOptions, class_codes, training_plan
from core.methods.distances import unit, weighted_concat
from core.methods.heads import HEAD, Votes, votes_signal
from core.search.neighbours import nearest_rows


def signal_blocks(data: TuneData, projection: np.ndarray | None, votes: Sequence[Votes] = ()) -> dict[str, np.ndarray]:
    """Each signal's unit vectors for every item: the bases, the head when there is one, the votes."""
    blocks = {s: unit(data.parts[s]) for s in [*data.bases, *data.fields]}
    if projection is not None:
        blocks[HEAD] = unit(data.x @ projection)
    for found in votes:
        blocks[votes_signal(found.source)] = found(blocks[found.source])
    return blocks


def deep_bases(data: TuneData, metrics: list[str]) -> list[str]:
    """The image bases that are not colour histograms (what photos are ranked by)."""
    return [b for b, k, m in zip(data.bases, data.kinds, metrics) if k == "image" and m != "hellinger"]


def _directions(vectors: np.ndarray, dim: int) -> np.ndarray:
    """The top `dim` principal directions of these rows (uncentred), as a (columns, dim) map."""
    _, directions = np.linalg.eigh((vectors.T @ vectors).astype(np.float64))  # ascending eigenvalues
    return directions[:, ::-1][:, : min(dim, vectors.shape[1])].astype(np.float32)


def voters(
    data: TuneData, projection: np.ndarray, rows: np.ndarray, metrics: list[str], options: TuneOptions
) -> list[Votes]:
    """The fields of `rows` that have every target value, in the head's space and in each deep image
    base's (reduced to its top `vote_dim` principal directions among them); none when learnt without
    targets or with votes turned off. Notions: the joint targets, then each target, weighted as the
    head's tasks."""
    if not data.notions or options.votes < 1:
        return []
    rows = rows[data.joint_classes[rows] >= 0]
    if len(rows) > options.voters:
        rows = np.sort(np.random.default_rng(options.seed).choice(rows, options.voters, replace=False))
    singles = [t for t in data.notions if t != data.joint]
    weights = [1.0] + [options.target_decay ** (n + 1) for n in range(len(singles))]
    codes = [class_codes(n[rows].tolist()) for n in [data.joint_classes, *(data.notions[t] for t in singles)]]  # voters
    shared = (np.stack(codes, axis=1), [int(c.max()) + 1 for c in codes], [w / sum(weights) for w in weights])
    found = [Votes(unit(data.x[rows] @ projection), *shared, options.votes, options.vote_temperature)]
    for base in deep_bases(data, metrics):
        vectors = unit(data.parts[base][rows])
        reduce = _directions(vectors, options.vote_dim)
        space = unit(vectors @ reduce)
        found.append(Votes(space, *shared, options.votes, options.vote_temperature, base, reduce))
    return found


def _field_pairs(
    data: TuneData, blocks: dict[str, np.ndarray], queries: np.ndarray, gallery: np.ndarray, options
) -> list:
    """Each query's best `candidates` by every signal among `gallery`, plus random ones: relevant when
    every target matches."""
    classes = data.joint_classes
    queries, gallery = queries[classes[queries] >= 0], gallery[classes[gallery] >= 0]
    rng = np.random.default_rng(options.seed)
    found = [nearest_rows(b[gallery], np.searchsorted(gallery, queries), options.candidates) for b in blocks.values()]
    pairs = []
    for n, q in enumerate(queries):
        mine = set(gallery[np.concatenate([f[n] for f in found])].tolist())
        mine |= set(rng.choice(gallery, min(options.pair_negatives, len(gallery)), replace=False).tolist()) - {q}
        pairs += [(q, c, int(classes[q] == classes[c])) for c in sorted(mine)]
    return pairs


def _label_pairs(data: TuneData, pairs: np.ndarray, gallery: np.ndarray, options: TuneOptions) -> list:
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


def fused(blocks: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    names = [s for s, w in weights.items() if w > 0]
    return unit(weighted_concat([blocks[s] for s in names], [weights[s] for s in names]))


def learn_weights(
    data: TuneData, blocks: dict[str, np.ndarray], options: TuneOptions
) -> tuple[dict[str, float], float]:
    """Signal weights from the training part (the inner items for fields when a head learnt from the
    others), with their inner check's score."""
    plan = training_plan(data)
    found = []
    if data.notions:
        queries = plan.inner_rows if HEAD in blocks else plan.train_rows[:: max(1, len(plan.train_rows) // 400)]
        found += _field_pairs(data, blocks, queries, plan.train_rows, options)
    if len(plan.fit_pairs):
        found += _label_pairs(data, plan.fit_pairs, plan.fit_rows, options)
    pairs = np.array(found, dtype=np.int64).reshape(-1, 3)
    features = np.stack([(b[pairs[:, 0]] * b[pairs[:, 1]]).sum(1) for b in blocks.values()], axis=1)
    weights = dict(zip(blocks, fit_weights(features, pairs, options.weight_decay).tolist()))
    return weights, inner_score(fused(blocks, weights), data, plan.train_rows, plan.inner_rows, plan.inner_pairs)


def photo_weights(
    data: TuneData, metrics: list[str], item: dict[str, float], options: TuneOptions
) -> tuple[dict, dict]:
    """(item weights, photo weights): photos use the deep image bases (not colour histograms, nor the
    head), weighted as for items; each gets at least `photo_floor` of the item weight so it has a block."""
    chosen = deep_bases(data, metrics) or data.image_bases
    item = {s: max(w, options.photo_floor) if s in chosen else w for s, w in item.items()}
    item = {s: w / sum(item.values()) for s, w in item.items()}
    total = sum(item[s] for s in chosen)
    return item, {s: item[s] / total for s in chosen}
