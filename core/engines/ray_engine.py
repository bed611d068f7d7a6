"""`embed --engine ray`: the embedding as a Ray Data batch-inference job, for clusters.

The driver (this process) reads the pending items from the catalog, exactly as local `embed`
does. Ray reads each photo from its path (a path every node sees) or fetches it from its URL,
decodes and preprocesses it in CPU tasks, and an actor pool (one model per actor, on a GPU
when asked for) embeds the batches. The vectors stream back to the driver, which stores each
batch as it arrives: an interrupted job keeps what it stored, and the next run (local or Ray)
computes only the rest. Ray is imported only here. See docs/scale.md.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

import core
from core.catalog import vectors
from core.catalog.db import Catalog
from core.engines.decode import Preprocess, decode_chunk
from core.engines.embed import EmbedReport
from core.methods import create_extractor, devices, get_spec

log = logging.getLogger(__name__)

GPU_BATCH = 256


def _decode_rows(rows: dict[str, np.ndarray], preprocess: Preprocess) -> dict[str, np.ndarray]:
    """A Ray CPU task: photos -> preprocessed pixels; an unreadable photo gets a blank and its reason."""
    good, pixels, failures = decode_chunk(list(zip(rows["path"], rows["url"])), preprocess)
    blank = preprocess([Image.new("RGB", (64, 64), "white")])[0]
    batch = np.repeat(blank[None], len(rows["item_id"]), axis=0)
    if good:
        batch[good] = pixels
    errors = np.full(len(batch), "", dtype=object)
    for n, reason in failures:
        errors[n] = reason
    return {"item_id": rows["item_id"], "source_hash": rows["source_hash"], "error": errors, "pixels": batch}


class _Embedder:
    """A Ray actor: one model, on a GPU when the actor holds one."""

    def __init__(self, method: str, device: str):
        devices.select(device)
        self.extractor = create_extractor(method)
        forward = self.extractor.embed_batch
        self.forward = (lambda batch: devices.forward_fitting(forward, batch)) if device != "cpu" else forward

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors_ = self.forward(batch.pop("pixels"))
        return {**batch, "vector": vectors_}


def start_ray(address: str | None = None, **options) -> None:
    """Join (or start) Ray with this checkout's `core` package shipped to every worker.

    The Python packages of requirements.txt must be installed on every node.
    """
    import ray

    ray.init(
        address=address,
        runtime_env={"py_modules": [str(Path(core.__file__).parent)]},
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        **options,
    )


def _settings_env(db: Catalog) -> dict[str, str]:
    """The driver's Lookalike settings for the workers; models from the catalog's models folder
    (a path every node must see, or the Hugging Face cache on each node)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("LOOKALIKE_", "HF_", "TRANSFORMERS_"))}
    env["LOOKALIKE_MODELS"] = str(db.models_dir)
    env.pop("LOOKALIKE_DEVICE", None)  # each actor is placed by its own resources
    return env


def _urls(db: Catalog) -> dict[tuple[str, str], str]:
    rows = db.execute("SELECT item_id, path, url FROM images WHERE status = 'ok' AND url IS NOT NULL")
    return {(item_id, path): url for item_id, path, url in rows}


def _default_workers(ray, gpus_per_worker: float) -> int:
    resources = ray.cluster_resources()
    if gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) // gpus_per_worker))
    return max(1, int(resources.get("CPU", 1)) // 4)  # the rest of the cores decode


def embed_with_ray(
    db: Catalog,
    method: str,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0,
    batch_size: int | None = None,
    limit: int | None = None,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> EmbedReport:
    """Compute and store every missing or outdated vector of `method` on a Ray cluster.

    address: None starts (or reuses) a Ray on this machine; `auto` joins the local cluster;
    `ray://host:10001` connects through Ray Client.
    """
    spec = get_spec(method, db)
    if spec.kind != "image" or spec.derived:
        raise ValueError(f"--engine ray runs image models; embed {method} without it")
    with devices.placed("cpu"):  # the driver's copy: version and preprocessing only
        extractor = create_extractor(method, db)
    if not spec.runs_model:
        raise ValueError(f"{method} has no model to distribute; embed it without --engine ray (it is fast locally)")
    version = extractor.spec.version
    todo = vectors.pending(db, method, version, "image", limit)
    report = EmbedReport(method, version, pending=len(todo))
    if not todo:
        return report

    import ray

    started = not ray.is_initialized()
    if started:
        start_ray(address)
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"embed {method} (ray)", unit=" img", disable=not progress)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        batch = batch_size or (GPU_BATCH if gpus_per_worker else devices.CPU_BATCH)
        runtime_env = {"env_vars": _settings_env(db)}
        urls = _urls(db)
        rows = [
            {"item_id": p.item_id, "path": p.path, "url": urls.get((p.item_id, p.path)), "source_hash": p.source_hash}
            for p in todo
        ]
        dataset = (
            ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // batch)))
            .map_batches(
                _decode_rows,
                fn_kwargs={"preprocess": extractor.preprocess},
                batch_size=batch,
                batch_format="numpy",
                num_cpus=1,
                runtime_env=runtime_env,
            )
            .map_batches(
                _Embedder,
                fn_constructor_kwargs={"method": method, "device": "cuda" if gpus_per_worker else "cpu"},
                compute=ray.data.ActorPoolStrategy(size=workers or _default_workers(ray, gpus_per_worker)),
                batch_size=batch,
                batch_format="numpy",
                num_cpus=1,
                num_gpus=gpus_per_worker,
                runtime_env=runtime_env,
            )
        )
        for result in dataset.iter_batches(batch_size=batch, batch_format="numpy"):
            _store(db, method, version, result, report)
            bar.update(len(result["item_id"]))
            if on_progress:
                on_progress(report.embedded + report.failed, report.pending)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
        if started:
            ray.shutdown()
    return report


def _store(db: Catalog, method: str, version: str, result: dict[str, np.ndarray], report: EmbedReport) -> None:
    """Write one streamed batch as local `embed` does: vectors in one transaction, failures recorded."""
    ok = result["error"] == ""
    vectors.store(db, method, version, zip(result["item_id"][ok], result["vector"][ok], result["source_hash"][ok]))
    report.embedded += int(ok.sum())
    for item_id, digest, reason in zip(result["item_id"][~ok], result["source_hash"][~ok], result["error"][~ok]):
        vectors.record_failure(db, method, version, str(item_id), str(digest), str(reason))
        log.warning("%s: item %s skipped: %s", method, item_id, reason)
    report.failed += int((~ok).sum())
