"""`embed --engine ray` on a local Ray (2 CPUs): the local run's vectors, failures recorded, resumable."""

from __future__ import annotations

import shutil

import pytest

from core.catalog import vectors
from core.catalog.db import open_catalog
from core.cli import main
from core.engines.embed import embed_catalog
from core.engines.ray_engine import embed_with_ray, start_ray

ray = pytest.importorskip("ray")
METHOD = "efficientnet_lite0"


@pytest.fixture(scope="module")
def local_ray():
    start_ray(num_cpus=2)
    yield
    ray.shutdown()


def stored(db) -> int:
    return db.execute("SELECT count(*) FROM embeddings WHERE method = ?", (METHOD,)).fetchone()[0]


def test_ray_gives_the_local_vectors_and_records_failures(local_ray, demo_catalog, db_path, tmp_path):
    item_id = demo_catalog.execute("SELECT min(item_id) FROM images").fetchone()[0]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a jpeg")
    demo_catalog.execute("UPDATE images SET path = ?, sha256 = 'broken' WHERE item_id = ?", (str(broken), item_id))
    demo_catalog.conn.commit()
    demo_catalog.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ray_path = tmp_path / "ray.db"
    shutil.copy(db_path, ray_path)
    local = embed_catalog(demo_catalog, METHOD, limit=60, progress=False)
    assert main(["embed", "--db", str(ray_path), "--engine", "ray", "--limit", "60", "--batch-size", "16"]) == 0
    ray_db = open_catalog(ray_path)
    ids, by_ray = vectors.load_matrix(ray_db, METHOD)
    local_ids, by_local = vectors.load_matrix(demo_catalog, METHOD)
    assert ids == local_ids and len(ids) == local.embedded == 59
    assert (by_ray * by_local).sum(axis=1).min() >= 0.9999
    reason = ray_db.execute("SELECT reason FROM embedding_failures WHERE item_id = ?", (item_id,)).fetchone()[0]
    assert reason == demo_catalog.execute("SELECT reason FROM embedding_failures").fetchone()[0]
    ray_db.conn.close()


def test_an_interrupted_ray_run_resumes_like_a_local_one(local_ray, demo_catalog):
    def stop_after_two_batches(done: int, total: int) -> None:
        if done >= 32:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_with_ray(
            demo_catalog, METHOD, batch_size=16, limit=80, progress=False, on_progress=stop_after_two_batches
        )
    kept = stored(demo_catalog)
    assert kept == 32  # the batches written before the stop are kept
    rest = embed_with_ray(demo_catalog, METHOD, batch_size=16, progress=False)
    assert rest.pending == rest.embedded == 300 - kept  # only the rest is computed
    assert stored(demo_catalog) == 300
    assert embed_catalog(demo_catalog, METHOD, progress=False).pending == 0
