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
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

import core
from core.catalog import vectors
from core.catalog.db import Catalog
from core.engines.decode import Preprocess, decode_chunk
from core.engines.embed import EmbedReport, note_failure, pending, serve_when_complete
from core.methods import backends, create_extractor, devices, preprocessing
from core.methods.base import photo_reader
from core.methods.weights import autoencoder_checkpoint
from core.search.space import MethodSpace
from core.team.access import Action, require

log = logging.getLogger(__name__)

GPU_BATCH = 256


def _decode_rows(
    rows: dict[str, np.ndarray], preprocess: Callable[[list[Image.Image]], np.ndarray]
) -> dict[str, np.ndarray]:
    """A Ray CPU task: photos -> preprocessed pixels; an unreadable photo gets a blank and its reason."""
    urls = [url if isinstance(url, str) and url else None for url in rows["url"]]  # Ray makes None columns NaN
    good, pixels, failures = decode_chunk(list(zip(rows["path"], urls)), preprocess)
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
        self.extractor = photo_reader(create_extractor(method))
        forward = self.extractor.embed_batch
        self.forward = devices.FittingForward(forward) if device != "cpu" else forward

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors_ = self.forward(batch.pop("pixels"))
        return {**batch, "vector": vectors_}


CLIENT_ADDRESS = (
    "--address {address}: Ray Data jobs are not supported over Ray Client (ray://); run this command on the "
    "head node with --address auto, or submit it there with `ray job submit` (docs/scale.md#submitting-a-job)"
)
NO_RAY = "--engine ray needs Ray on this machine and every node: pip install 'ray[data]==2.60.0' (docs/scale.md)"


CONNECT_WAIT_S = 5.0  # how long a cluster address may take to accept a connection


def check_address(address: str | None) -> None:
    """Refuse a Ray Client address in one line, saying what to do instead."""
    if address and address.strip().lower().startswith("ray://"):
        raise ValueError(CLIENT_ADDRESS.format(address=address))


def check_reachable(address: str | None, wait_s: float = CONNECT_WAIT_S) -> None:
    """One line, after at most `wait_s`, when nothing answers at a `HOST:PORT` address (Ray itself would
    retry for minutes); None and `local` (a Ray on this machine) and `auto` are Ray's to find."""
    if not address or address.strip().lower() in ("auto", "local"):
        return
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--address {address}: give the head node's HOST:PORT (e.g. 10.0.0.5:6379), or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=wait_s).close()
    except OSError as exc:
        raise ValueError(
            f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); start its head node "
            "(`ray start --head`) or check the address, or run on the head node with --address auto"
        ) from None


def import_ray():
    """Ray, or one line saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the Ray Data extra, not only the core
    except ImportError:
        raise RuntimeError(NO_RAY) from None
    return ray


def start_ray(address: str | None = None, **options) -> None:
    """Join (or start) Ray with this checkout's `core` package shipped to every worker.

    The Python packages of requirements.txt must be installed on every node.
    """
    ray = import_ray()
    ray.init(
        address=address,
        runtime_env={"py_modules": [str(Path(core.__file__).parent)]},
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        **options,
    )


@dataclass(frozen=True)
class ActorPlan:
    """How the model actors are placed: their device, how many, and what each reserves."""

    device: str  # "cuda" or "cpu"
    workers: int
    gpus: float  # per actor
    cpus: int  # per actor, and the torch threads it runs


def plan_actors(
    device: str | None, gpus_per_worker: float | None, workers: int | None, cluster: dict, largest_node: dict
) -> ActorPlan:
    """One rule for `--device` and `--gpus-per-worker` on a cluster, checked against its resources.

    `cuda` means GPU actors (one GPU each unless `--gpus-per-worker` says otherwise), `cpu` CPU
    actors, `auto` GPU actors when the cluster has GPUs (or `--gpus-per-worker` asks for them).
    A plan the cluster cannot hold now is refused in one line instead of waiting silently.
    """
    device = (device or devices.configured()).lower()
    have = cluster.get("GPU", 0)
    if device == "mps":
        raise ValueError("--engine ray runs models on NVIDIA GPUs or CPUs; use --device auto, cuda or cpu")
    if device == "cpu" and gpus_per_worker:
        raise ValueError("--gpus-per-worker needs --device cuda or auto, not --device cpu")
    if device == "auto":
        device = "cuda" if gpus_per_worker or (gpus_per_worker is None and have) else "cpu"
    if device == "cpu":
        workers = workers or max(1, int(cluster.get("CPU", 1)) // 4)  # the other cores decode
        cpus = max(1, min(int(largest_node.get("CPU", 1)) // 2, int(cluster.get("CPU", 1)) // (2 * workers)))
        return ActorPlan("cpu", workers, 0, cpus)
    gpus = gpus_per_worker or 1
    if not have:
        raise ValueError("--device cuda: the Ray cluster has no GPUs now; add GPU nodes or use --device cpu")
    if gpus > largest_node.get("GPU", 0):
        raise ValueError(f"--gpus-per-worker {gpus:g}: no node of the Ray cluster has {gpus:g} GPUs")
    workers = workers or max(1, int(have // gpus))
    if workers * gpus > have:
        raise ValueError(
            f"{workers} workers x {gpus:g} GPUs need {workers * gpus:g} GPUs but the Ray cluster has {have:g}; "
            "lower --workers or --gpus-per-worker (Ray would wait for them without a word)"
        )
    return ActorPlan("cuda", workers, gpus, 1)


def cluster_view(ray) -> tuple[dict, dict]:
    """The cluster's total resources and the largest CPU and GPU counts of any one alive node."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    largest = {key: max((n.get(key, 0) for n in nodes), default=0) for key in ("CPU", "GPU")}
    return ray.cluster_resources(), largest


# What workers read from the driver's environment: settings that change the vectors, and offline
# switches. Paths (catalog, models folder, caches) are the driver's and tokens are secrets: neither
# goes unless asked with --worker-env.
FORWARDED = ("LOOKALIKE_BACKEND", "LOOKALIKE_HYBRID", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def worker_env(asked: Sequence[str], threads: int, models: Path | None = None) -> dict[str, str]:
    """The environment of every Ray worker: the settings of FORWARDED, the threads each actor
    reserved, this process's precision (`--precision`), `models` (a Ray started on this machine shares its paths) and what `asked` names:
    `NAME` (the driver's value) or `NAME=VALUE`."""
    env = {name: os.environ[name] for name in FORWARDED if name in os.environ}
    if models is not None:
        env["LOOKALIKE_MODELS"] = str(models)
    for entry in asked:
        name, sep, value = entry.partition("=")
        if not sep and name not in os.environ:
            raise ValueError(f"--worker-env {name}: {name} is not set here; give it a value with {name}=VALUE")
        env[name.strip()] = value if sep else os.environ[name]
    env.update(LOOKALIKE_THREADS=str(threads), OMP_NUM_THREADS=str(threads), LOOKALIKE_PRECISION=backends.precision())
    return env


def driver_side(space: MethodSpace) -> tuple[str, Preprocess]:
    """What the driver needs of a method: its real version and its decode tasks' preprocessing,
    both from the space's spec (for a transformer, its processor's config): no model is loaded here."""
    return space.version, preprocessing(space.spec, space.catalog)


def _urls(db: Catalog) -> dict[tuple[str, str], str]:
    rows = db.execute("SELECT item_id, path, url FROM images WHERE status = 'ok' AND url IS NOT NULL")
    return {(item_id, path): url for item_id, path, url in rows}


def embed_with_ray(
    space: MethodSpace,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    device: str | None = None,
    retry_failed: bool = False,
    env: Sequence[str] = (),
) -> EmbedReport:
    """Compute and store every missing or outdated vector of the space's method on a Ray cluster (each
    actor loads the model by the method's name in its own process).

    address: None starts (or reuses) a Ray on this machine; `auto` joins the cluster this machine
    belongs to (run it on the head node, or through `ray job submit`). device and gpus_per_worker:
    see `plan_actors`. env: `NAME` or `NAME=VALUE` entries for the workers (`worker_env`).
    """
    require(Action.EMBED)
    check_address(address)
    check_reachable(address)
    db, method = space.catalog, space.name
    if space.kind != "image" or space.registered.derived:
        raise ValueError(f"--engine ray runs image models; embed {method} without it")
    if not space.runs_model:
        raise ValueError(f"{method} has no model to distribute; embed it without --engine ray (it is fast locally)")
    ray = import_ray()
    version, preprocess = driver_side(space)
    todo = pending(db, method, version, "image", limit, retry_failed)
    report = EmbedReport(method, version, pending=len(todo))
    if not todo:
        return report
    started = not ray.is_initialized()
    if started:
        start_ray(address)
    try:
        plan = plan_actors(device, gpus_per_worker, workers, *cluster_view(ray))
        log.info("ray: %s", plan)
        runtime_env = {"env_vars": worker_env(env, plan.cpus, db.models_dir if address is None else None)}
        if address is None and method == "autoencoder":  # this catalog's own checkpoint (a path this machine shares)
            runtime_env["env_vars"]["LOOKALIKE_AUTOENCODER"] = str(autoencoder_checkpoint(db))
        dataset = _dataset(ray, db, todo, preprocess, method, plan, runtime_env, batch_size)
        _stream(db, dataset, report, progress, on_progress, batch_size or _batch(plan))
    finally:
        if started:
            ray.shutdown()
    serve_when_complete(db, report, limit)
    return report


def _batch(plan: ActorPlan) -> int:
    return GPU_BATCH if plan.device == "cuda" else devices.CPU_BATCH


def _dataset(
    ray, db: Catalog, todo: list, preprocess: Preprocess, method: str, plan: ActorPlan, runtime_env: dict, batch_size
):
    """The Ray Data pipeline: decode tasks on CPUs, then the actor pool of the plan."""
    batch = batch_size or _batch(plan)
    urls = _urls(db)
    rows = [
        {"item_id": p.item_id, "path": p.path, "url": urls.get((p.item_id, p.path)), "source_hash": p.source_hash}
        for p in todo
    ]
    return (
        ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // batch)))
        .map_batches(
            _decode_rows,
            fn_kwargs={"preprocess": preprocess},
            batch_size=batch,
            batch_format="numpy",
            num_cpus=1,
            runtime_env=runtime_env,
        )
        .map_batches(
            _Embedder,
            fn_constructor_kwargs={"method": method, "device": plan.device},
            compute=ray.data.ActorPoolStrategy(size=plan.workers),
            batch_size=batch,
            batch_format="numpy",
            num_cpus=plan.cpus,
            num_gpus=plan.gpus,
            runtime_env=runtime_env,
        )
    )


def _stream(db: Catalog, dataset, report: EmbedReport, progress: bool, on_progress, batch: int) -> None:
    """Store the job's batches as they arrive; start-up (actors, models) is timed apart."""
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    bar = tqdm(total=report.pending, desc=f"embed {report.method} (ray)", unit=" img", disable=not progress)
    start = time.perf_counter()
    try:
        for n, result in enumerate(dataset.iter_batches(batch_size=batch, batch_format="numpy")):
            if n == 0:  # actors started, models loaded, the first batch decoded and embedded
                report.startup = time.perf_counter() - start
            _store(db, result, report)
            bar.update(len(result["item_id"]))
            if on_progress:
                on_progress(report.embedded + report.failed + report.unavailable, report.pending)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start - report.startup


def _store(db: Catalog, result: dict[str, np.ndarray], report: EmbedReport) -> None:
    """Write one streamed batch as local `embed` does: vectors in one transaction, failures noted."""
    ok = result["error"] == ""
    vectors.store(
        db, report.method, report.version, zip(result["item_id"][ok], result["vector"][ok], result["source_hash"][ok])
    )
    report.embedded += int(ok.sum())
    for item_id, digest, reason in zip(result["item_id"][~ok], result["source_hash"][~ok], result["error"][~ok]):
        note_failure(db, report, str(item_id), str(digest), str(reason))
