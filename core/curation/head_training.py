"""The learnt head: a linear map of the bases' weighted concatenation trained with contrastive losses
on target classes and judged pairs (torch), starting from the top principal directions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.curation.tune_scores import inner_score
from core.curation.tune_setup import Plan, TuneData, TuneOptions, training_plan


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


def _step_loss(project, x, weight, start, plan: Plan, tasks, batches, rng, options: TuneOptions):
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
    data: TuneData, options: TuneOptions, progress: bool = True, on_progress: Callable[[int, int], None] | None = None
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
    plan = training_plan(data)
    tasks = []
    if data.notions:
        singles = [t for t in data.notions if t != data.joint]
        tasks = [(torch.from_numpy(data.joint_classes).to(device), 1.0)] + [
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
        return inner_score(z, data, plan.train_rows, plan.inner_rows, plan.inner_pairs)

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
