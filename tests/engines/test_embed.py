"""Batch embedding: resumable, idempotent, failures recorded, outdated vectors recomputed."""

from __future__ import annotations

import errno
import io
import json
import shutil

import numpy as np
import pytest

from core.catalog import vectors
from core.engines.embed import embed_catalog
from core.methods import DerivedExtractor, MethodSpec, build_extractor, create_extractor
from core.search.queries import photo_vector
from core.search.space import open_space

from helpers import moved_photo


def count(db, method: str) -> int:
    return db.execute("SELECT count(*) FROM embeddings WHERE method = ?", (method,)).fetchone()[0]


def test_embedding_resumes_where_it_stopped(demo_catalog):
    extractor = create_extractor("color_hist")
    calls = {"n": 0}
    original = extractor.embed_batch

    def flaky(batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(batch)

    extractor.embed_batch = flaky
    with pytest.raises(KeyboardInterrupt):
        embed_catalog(demo_catalog, "color_hist", batch_size=50, progress=False, extractor=extractor)
    assert count(demo_catalog, "color_hist") == 100  # two whole batches were kept
    report = embed_catalog(demo_catalog, "color_hist", batch_size=50, progress=False)
    assert report.pending == 200 and report.embedded == 200
    assert count(demo_catalog, "color_hist") == 300
    assert embed_catalog(demo_catalog, "color_hist", progress=False).pending == 0


def test_limit_and_text_method(demo_catalog):
    assert embed_catalog(demo_catalog, "minilm", limit=10, progress=False).embedded == 10
    assert embed_catalog(demo_catalog, "minilm", progress=False).embedded == 290
    demo_catalog.execute("UPDATE items SET title = 'Changed title' WHERE id = (SELECT min(id) FROM items)")
    demo_catalog.conn.commit()
    assert embed_catalog(demo_catalog, "minilm", progress=False).embedded == 1  # changed text only


def test_unreadable_photo_is_recorded_skipped_and_retried_when_fixed(demo_catalog, tmp_path):
    item_id, path = demo_catalog.execute("SELECT item_id, path FROM images ORDER BY item_id LIMIT 1").fetchone()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    demo_catalog.execute("UPDATE images SET path = ?, sha256 = 'broken' WHERE item_id = ?", (str(broken), item_id))
    demo_catalog.conn.commit()
    report = embed_catalog(demo_catalog, "color_hist", progress=False)
    assert report.failed == 1 and report.embedded == 299
    reason = demo_catalog.execute("SELECT reason FROM embedding_failures WHERE item_id = ?", (item_id,)).fetchone()[0]
    assert "corrupt" in reason or "not a readable image" in reason
    assert embed_catalog(demo_catalog, "color_hist", progress=False).pending == 0  # not retried as is
    shutil.copy(path, broken)
    demo_catalog.execute("UPDATE images SET sha256 = 'fixed' WHERE item_id = ?", (item_id,))
    demo_catalog.conn.commit()
    assert embed_catalog(demo_catalog, "color_hist", progress=False).embedded == 1
    assert demo_catalog.execute("SELECT count(*) FROM embedding_failures").fetchone()[0] == 0


def test_a_missing_photo_is_not_recorded_and_is_embedded_once_it_is_back(demo_catalog, tmp_path):
    item_id, path = moved_photo(demo_catalog, tmp_path)
    path.rename(tmp_path / "away.jpg")  # a mount that is not there, a file not synced yet
    report = embed_catalog(demo_catalog, "color_hist", progress=False)
    assert (report.embedded, report.unavailable, report.failed) == (299, 1, 0)
    assert demo_catalog.execute("SELECT count(*) FROM embedding_failures").fetchone()[0] == 0
    (tmp_path / "away.jpg").rename(path)
    assert embed_catalog(demo_catalog, "color_hist", progress=False).embedded == 1


def test_an_io_error_while_reading_is_a_reason_to_try_again(tmp_path, monkeypatch):
    from core.catalog import images

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8 some bytes")

    class FailingReads(io.FileIO):
        def read(self, size=-1):
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(images.os, "fdopen", lambda fd, mode: FailingReads(fd, "rb"))
    with pytest.raises(images.ImageError) as error:
        images.read_file(photo)
    assert str(error.value) == "cannot read photo.jpg: Input/output error" and images.unavailable(str(error.value))
    assert not images.unavailable("corrupt or truncated image (broken data stream)")


def test_an_older_catalogs_missing_file_failures_heal_and_retry_failed_retries_the_rest(demo_catalog):
    ids = [r[0] for r in demo_catalog.execute(f"{vectors.primary_images_sql()} ORDER BY 1 LIMIT 2")]
    for item_id, reason in zip(ids, ("file not found: a.jpg", "corrupt or truncated image (broken data stream)")):
        vectors.record_failure(demo_catalog, "color_hist", "1", item_id, None, reason)
    demo_catalog.execute(
        "UPDATE embedding_failures SET source_hash = (SELECT sha256 FROM images i "
        "WHERE i.item_id = embedding_failures.item_id)"
    )
    demo_catalog.conn.commit()
    assert embed_catalog(demo_catalog, "color_hist", progress=False).embedded == 299  # the missing one is retried
    assert embed_catalog(demo_catalog, "color_hist", progress=False, retry_failed=True).embedded == 1


def test_a_full_disk_during_embedding_keeps_the_finished_batches(demo_catalog):
    from core.files.failures import PartialWork

    from helpers import disk_full_after

    disk_full_after(demo_catalog, 150)
    with pytest.raises(
        PartialWork,
        match=r"database or disk is full: (\d+) of 300 embedded before the error; "
        "run the same command again to carry on",
    ) as stopped:
        embed_catalog(demo_catalog, "color_hist", batch_size=32, progress=False)
    kept = int(stopped.value.progress.split()[0])
    assert 0 < kept < 300 and kept % 32 == 0
    stored = "SELECT count(*) FROM embeddings WHERE method = 'color_hist'"
    assert demo_catalog.execute(stored).fetchone()[0] == kept
    disk_full_after(demo_catalog, 10_000)
    assert embed_catalog(demo_catalog, "color_hist", progress=False).embedded == 300 - kept
    assert demo_catalog.execute(stored).fetchone()[0] == 300


def test_a_photo_swapped_for_malformed_exif_after_import_is_recorded_and_embed_goes_on(tmp_path):
    from core.catalog.db import open_catalog
    from core.catalog.importers import import_csv

    from helpers import malformed_exif_jpeg, small_styles

    csv_path, folder = small_styles(tmp_path, 5)
    db = open_catalog(tmp_path / "c.db")
    import_csv(db, csv_path, folder, progress=False)
    victim = sorted(folder.iterdir())[0]
    victim.write_bytes(malformed_exif_jpeg())
    db.execute("UPDATE images SET sha256 = 'swapped' WHERE path = ?", [str(victim.resolve())])
    db.conn.commit()
    for _ in range(2):
        report = embed_catalog(db, "color_hist", progress=False)
    assert db.execute("SELECT count(*) FROM embeddings WHERE method = 'color_hist'").fetchone()[0] == 4
    reason = db.execute("SELECT reason FROM embedding_failures WHERE method = 'color_hist'").fetchone()[0]
    assert "damaged photo" in reason and report.failed == 0


def test_new_version_recomputes_everything(demo_catalog):
    embed_catalog(demo_catalog, "color_hist", limit=5, progress=False)
    demo_catalog.execute("UPDATE embeddings SET version = 'old' WHERE method = 'color_hist'")
    demo_catalog.conn.commit()
    assert len(vectors.pending(demo_catalog, "color_hist", "1")) == 300


def test_uploaded_photo_matches_catalog_vector(embedded_demo):
    item_id, path = embedded_demo.execute("SELECT item_id, path FROM images ORDER BY item_id LIMIT 1").fetchone()
    data = open(path, "rb").read()
    stored = vectors.get_vector(embedded_demo, "efficientnet_lite0", item_id)
    uploaded = photo_vector(open_space(embedded_demo, "efficientnet_lite0"), data)
    assert np.allclose(stored, uploaded, atol=1e-5)


def test_hybrid_is_combined_from_its_parts_stored_vectors(embedded_demo):
    from core.methods import get_spec
    from core.methods.hybrid import combine, configured

    weights = configured()[0]

    with embedded_demo.conn:  # the demo set-up embeds hybrid: start without its vectors
        embedded_demo.conn.execute("DELETE FROM embeddings WHERE method = 'hybrid'")
    report = embed_catalog(embedded_demo, "hybrid", progress=False)  # parts already embedded
    assert report.embedded == 300 and report.failed == 0
    ids, hybrid = vectors.load_matrix(embedded_demo, "hybrid")
    parts = {name: np.stack([vectors.get_vector(embedded_demo, name, i) for i in ids]) for name in weights}
    assert hybrid.shape == (300, get_spec("hybrid").dim)
    assert np.allclose(hybrid, combine(parts, weights), atol=1e-6)
    assert np.allclose(np.linalg.norm(hybrid, axis=1), 1, atol=1e-5)
    assert embed_catalog(embedded_demo, "hybrid", progress=False).pending == 0


def test_uploaded_photo_through_a_derived_method_runs_its_parts(embedded_demo):
    embed_catalog(embedded_demo, "hybrid", progress=False, limit=3)
    item_id, path = embedded_demo.execute("SELECT item_id, path FROM images ORDER BY item_id LIMIT 1").fetchone()
    uploaded = photo_vector(open_space(embedded_demo, "hybrid"), open(path, "rb").read())
    assert np.allclose(uploaded, vectors.get_vector(embedded_demo, "hybrid", item_id), atol=1e-5)


class Projection(DerivedExtractor):
    """A fixed linear head over stored efficientnet_lite0 vectors (how a tuned head plugs in)."""

    matrix = np.random.default_rng(0).normal(size=(1280, 16)).astype(np.float32)

    def combine(self, part_vectors):
        return part_vectors["efficientnet_lite0"] @ self.matrix


PROJECTED = MethodSpec(
    name="projected",
    version="1",
    kind="image",
    dim=16,
    metric="angular",
    family="test",
    description="a projection",
    weights="its part's",
    factory="test_embed:Projection",
    parts=("efficientnet_lite0",),
)


def test_any_derived_spec_is_embedded_from_stored_vectors(embedded_demo, monkeypatch):
    from core.methods import registry

    monkeypatch.setitem(registry._REGISTRY, "projected", PROJECTED)
    assert embed_catalog(embedded_demo, "projected", progress=False).embedded == 300
    ids, projected = vectors.load_matrix(embedded_demo, "projected")
    _, base = vectors.load_matrix(embedded_demo, "efficientnet_lite0")
    expected = base @ Projection.matrix
    assert np.allclose(projected, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)


@pytest.fixture
def catalog_method(monkeypatch) -> list[str]:
    """`projected` as one of the catalog's own methods (as tuned.py registers its heads): each time the
    catalog is asked for it is noted in the list returned."""
    from core.methods import registry

    looked_up: list[str] = []

    def catalog_specs(catalog, name):
        looked_up.extend([name] if name == "projected" else [])
        return [PROJECTED] if name in (None, "projected") else []

    monkeypatch.setattr(registry, "_CATALOG_SPECS", [*registry._CATALOG_SPECS, catalog_specs])
    return looked_up


def test_embed_and_index_look_the_method_up_once(embedded_demo, catalog_method, monkeypatch):
    """Embed + index (the Methods page, the demo, `sync`) carries the space it is given to the embedding,
    the model, the parts and the index: a catalog's own method (as a tuned one) is looked up in the
    catalog once, not once per step (it was three times), and its extractor is built once."""
    from core.engines.prepare import prepare_method

    built = []
    monkeypatch.setattr(
        Projection, "__init__", lambda self, *args: built.append(1) or DerivedExtractor.__init__(self, *args)
    )
    report = prepare_method(open_space(embedded_demo, "projected"))
    assert report.embedded == 300 and catalog_method == ["projected"] and len(built) == 1
    assert open_space(embedded_demo, "projected").loaded_index(rebuild=False).info.items == 300


def test_the_embed_command_opens_the_method_once(embedded_demo, catalog_method, capsys):
    """`embed`: the argument is checked when it is parsed, then the command opens the method's space
    once and hands it to the engine (it was looked up four times)."""
    from core.cli import main

    assert main(["embed", "--db", str(embedded_demo.path), "--method", "projected", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["embedded"] == 300
    assert catalog_method == ["projected", "projected"]  # the argument's check, then the command's space


def test_start_up_is_timed_apart_from_the_rate(demo_catalog, monkeypatch):
    import time

    from core.methods import devices

    real = devices.batch_size

    def slow_probe(*args, **kwargs):  # a GPU's batch-size probe and worker start take seconds
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(devices, "batch_size", slow_probe)
    start = time.perf_counter()
    report = embed_catalog(demo_catalog, "color_hist", limit=64, progress=False)
    wall = time.perf_counter() - start
    assert report.startup >= 0.5 and 0 < report.seconds <= wall - report.startup
    assert report.as_dict()["startup"] == report.startup


def test_nothing_to_do_loads_no_model_draws_no_bar_and_keeps_a_current_index(embedded_demo, capsys, monkeypatch):
    """A second `make demo` (the demo set-up again) is quiet: no embed bar, no model, no index rebuilt."""
    from core.demo import DEMO_METHODS, setup_demo
    from core.search.index import read_manifest

    setup_demo(embedded_demo, progress=False)  # the indices the fixture lacks
    built = {m: read_manifest(embedded_demo, m).built_at for m in DEMO_METHODS}
    capsys.readouterr()
    loaded = []
    real = build_extractor
    monkeypatch.setattr(
        "core.search.space.build_extractor", lambda spec, *a, **kw: loaded.append(spec.name) or real(spec, *a, **kw)
    )
    setup_demo(embedded_demo, progress=True)
    err = capsys.readouterr().err
    assert "embed " not in err and "adding" not in err, err
    assert loaded == []  # not even the hybrid's combiner: the first set-up's is still loaded
    assert {m: read_manifest(embedded_demo, m).built_at for m in DEMO_METHODS} == built
