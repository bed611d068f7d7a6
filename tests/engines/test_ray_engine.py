"""`embed --engine ray` on a local Ray (2 CPUs): the local run's vectors, failures recorded, resumable
(on the first 64 demo items: a few batches are all these need)."""

from __future__ import annotations

import shutil
import sys

import pytest

from core.catalog import vectors
from core.catalog.db import open_catalog
from core.cli import main
from core.engines.embed import embed_catalog
from core.engines.ray_engine import ActorPlan, driver_side, embed_with_ray, plan_actors, start_ray, worker_env
from core.search.space import open_space

from helpers import moved_photo

ray = pytest.importorskip("ray")
METHOD = "efficientnet_lite0"


@pytest.fixture(scope="module")
def local_ray():
    start_ray(num_cpus=2)
    yield
    ray.shutdown()


def stored(db) -> int:
    return db.execute("SELECT count(*) FROM embeddings WHERE method = ?", (METHOD,)).fetchone()[0]


def test_ray_gives_the_local_vectors_and_records_failures(local_ray, small_demo, db_path, tmp_path):
    item_id = small_demo.execute("SELECT min(item_id) FROM images").fetchone()[0]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a jpeg")
    small_demo.execute("UPDATE images SET path = ?, sha256 = 'broken' WHERE item_id = ?", (str(broken), item_id))
    small_demo.conn.commit()
    small_demo.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ray_path = tmp_path / "ray.db"
    shutil.copy(db_path, ray_path)
    local = embed_catalog(small_demo, METHOD, limit=24, progress=False)
    assert main(["embed", "--db", str(ray_path), "--engine", "ray", "--limit", "24", "--batch-size", "16"]) == 0
    ray_db = open_catalog(ray_path)
    ids, by_ray = vectors.load_matrix(ray_db, METHOD)
    local_ids, by_local = vectors.load_matrix(small_demo, METHOD)
    assert ids == local_ids and len(ids) == local.embedded == 23
    assert (by_ray * by_local).sum(axis=1).min() >= 0.9999
    reason = ray_db.execute("SELECT reason FROM embedding_failures WHERE item_id = ?", (item_id,)).fetchone()[0]
    assert reason == small_demo.execute("SELECT reason FROM embedding_failures").fetchone()[0]
    ray_db.conn.close()


def test_an_interrupted_ray_run_resumes_like_a_local_one(local_ray, small_demo):
    def stop_after_two_batches(done: int, total: int) -> None:
        if done >= 32:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_with_ray(
            open_space(small_demo, METHOD), batch_size=16, limit=48, progress=False, on_progress=stop_after_two_batches
        )
    kept = stored(small_demo)
    assert kept == 32  # the batches written before the stop are kept
    rest = embed_with_ray(open_space(small_demo, METHOD), batch_size=16, progress=False)
    assert rest.pending == rest.embedded == 64 - kept  # only the rest is computed
    assert stored(small_demo) == 64
    assert embed_catalog(small_demo, METHOD, progress=False).pending == 0


def test_a_photo_missing_on_a_run_is_tried_again_on_the_next(local_ray, small_demo, tmp_path):
    """A node without the photo mount (or an NFS hiccup) must not mark photos failed for good."""
    item_id, path = moved_photo(small_demo, tmp_path)
    away = tmp_path / "away.jpg"
    path.rename(away)
    report = embed_with_ray(open_space(small_demo, METHOD), batch_size=16, limit=20, progress=False)
    assert (report.embedded, report.unavailable, report.failed) == (19, 1, 0)
    assert small_demo.execute("SELECT count(*) FROM embedding_failures").fetchone()[0] == 0
    away.rename(path)  # the mount is back
    again = embed_with_ray(open_space(small_demo, METHOD), batch_size=16, limit=1, progress=False)
    assert again.embedded == 1 and vectors.get_vector(small_demo, METHOD, item_id) is not None


def test_ray_client_addresses_and_a_missing_ray_get_one_line(db_path, catalog, capsys, monkeypatch):
    argv = ["embed", "--db", str(db_path), "--engine", "ray"]
    assert main([*argv, "--address", "ray://head:10001"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ray job submit" in err and "--address auto" in err
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'ray[data]" in err


def test_device_and_gpus_per_worker_follow_one_rule():
    gpus, node = {"CPU": 64, "GPU": 8}, {"CPU": 32, "GPU": 4}
    assert plan_actors("cuda", None, None, gpus, node) == ActorPlan("cuda", 8, 1, 1)
    assert plan_actors("auto", None, None, gpus, node) == ActorPlan("cuda", 8, 1, 1)
    assert plan_actors("auto", 2, None, gpus, node) == ActorPlan("cuda", 4, 2, 1)
    assert plan_actors("cpu", None, None, gpus, node) == ActorPlan("cpu", 16, 0, 2)  # threads = reserved CPUs
    assert plan_actors("auto", None, None, {"CPU": 2}, {"CPU": 2}) == ActorPlan("cpu", 1, 0, 1)
    with pytest.raises(ValueError, match="need 16 GPUs but the Ray cluster has 8"):
        plan_actors("cuda", 2, 8, gpus, node)
    with pytest.raises(ValueError, match="no node of the Ray cluster has 8 GPUs"):
        plan_actors("cuda", 8, 1, gpus, node)
    with pytest.raises(ValueError, match="has no GPUs"):
        plan_actors("cuda", None, None, {"CPU": 8}, {"CPU": 8})
    with pytest.raises(ValueError, match="not --device cpu"):
        plan_actors("cpu", 1, None, gpus, node)


def test_cuda_actors_on_a_cluster_without_gpus_are_refused_at_once(local_ray, small_demo, db_path, capsys):
    assert main(["embed", "--db", str(db_path), "--engine", "ray", "--device", "cuda", "--limit", "4"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --device cuda: the Ray cluster has no GPUs now; add GPU nodes or use --device cpu"
    )


def test_workers_get_settings_and_reserved_threads_but_no_paths_or_tokens(monkeypatch, tmp_path):
    for name, value in {
        "HF_TOKEN": "hf_secret",
        "HF_HOME": "/Users/me/hf",
        "LOOKALIKE_MODELS": "/Users/me/m",
        "TRANSFORMERS_CACHE": "/Users/me/t",
        "LOOKALIKE_BACKEND": "torch",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    env = worker_env([], threads=2)
    assert env == {
        "LOOKALIKE_BACKEND": "torch",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "LOOKALIKE_THREADS": "2",
        "OMP_NUM_THREADS": "2",
        "LOOKALIKE_PRECISION": "auto",
    }
    asked = worker_env(["HF_TOKEN", "LOOKALIKE_MODELS=/mnt/models"], threads=1)
    assert asked["HF_TOKEN"] == "hf_secret" and asked["LOOKALIKE_MODELS"] == "/mnt/models"
    assert worker_env([], 1, models=tmp_path)["LOOKALIKE_MODELS"] == str(tmp_path)  # a Ray on this machine
    with pytest.raises(ValueError, match="NOT_SET is not set here"):
        worker_env(["NOT_SET"], threads=1)


def test_workers_run_at_the_drivers_precision(monkeypatch):
    """`embed --engine ray --precision fp32`: every worker runs float32, as the driver was told."""
    from core.methods import backends
    from core.settings import reload

    monkeypatch.setattr(backends, "_precision", None)
    monkeypatch.delenv("LOOKALIKE_PRECISION", raising=False)
    reload()
    backends.select_precision("fp32")
    sent = worker_env([], threads=1)["LOOKALIKE_PRECISION"]
    assert sent == "fp32"
    monkeypatch.setattr(backends, "_precision", None)  # a worker process: no --precision, the driver's setting
    monkeypatch.setenv("LOOKALIKE_PRECISION", sent)
    reload()
    assert backends.precision() == "fp32"
    monkeypatch.setenv("LOOKALIKE_PRECISION", "half")
    reload()
    with pytest.raises(backends.BackendError, match="LOOKALIKE_PRECISION must be auto, int8 or fp32"):
        backends.precision()
    monkeypatch.delenv("LOOKALIKE_PRECISION")
    reload()


def test_the_driver_finds_version_and_preprocessing_without_loading_a_model(catalog, monkeypatch):
    """The driver only needs the version and what decode tasks run: from the spec and, for a transformer,
    its processor's config. Weights that cannot load as a model (here: not a model at all) never matter."""
    from transformers import CLIPImageProcessor

    from core.methods import create_extractor, get_spec, preprocessing
    from core.methods.efficientnet_lite0 import PIXELS
    from core.methods.preprocess import Pixels
    from core.methods.registry import _REGISTRY
    from core.methods.transformers_models import processor_pixels

    processor = CLIPImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224})
    for method in ("clip", "resnet50"):
        folder = catalog.models_dir / method
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"not a model")
    processor.save_pretrained(catalog.models_dir / "clip")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Exception):  # noqa: B017 - any failure: the point is that the driver never tries
        create_extractor("clip", catalog)
    assert driver_side(open_space(catalog, "clip")) == ("1", processor_pixels(processor))
    assert driver_side(open_space(catalog, "clip"))[1] == Pixels(
        224, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711), 3, 256
    )
    assert driver_side(open_space(catalog, "resnet50")) == (
        "1",
        Pixels(224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    )
    assert driver_side(open_space(catalog, METHOD)) == ("1", PIXELS)
    models = [s for s in _REGISTRY.values() if s.kind == "image" and s.runs_model and not s.derived]
    assert models and all(spec.preprocessing for spec in models)  # every method Ray can run says how
    from core.methods.colour import histograms

    assert preprocessing(get_spec("color_hist")) is histograms  # others: their extractor's, built (cheap)


def test_an_address_where_nothing_listens_is_one_line_after_a_short_wait(small_demo, capsys):
    """`--address 127.0.0.1:PORT` with no cluster there: one line within seconds (Ray would retry for minutes)."""
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free again once closed: nothing listens there
    started = time.monotonic()
    assert main(["embed", "--db", str(small_demo.path), "--engine", "ray", "--address", f"127.0.0.1:{port}"]) == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--address 127.0.0.1:{port}: no Ray cluster answers there" in err
    assert main(["embed", "--db", str(small_demo.path), "--engine", "ray", "--address", "head-without-port"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
