"""A method's space: resolved once per search, its model cached by its real version."""

from __future__ import annotations

import pytest

from core.curation import tuning
from core.engines.autoencoder_training import train
from core.engines.embed import embed_catalog
from core.methods import tuned
from core.search import backends
from core.search.queries import search
from core.search.space import SearchError, open_space

from helpers import DEMO


def test_a_retrained_autoencoder_searches_by_photo_without_a_restart(tiny_demo):
    """Train, embed, search by photo, retrain, re-embed, search by photo: all in one process (the app
    trains in-process), so the second search must load the retrained model, not the cached first one."""
    photo = sorted((DEMO / "images").glob("*.jpg"))[0].read_bytes()
    train(tiny_demo, epochs=1, batch_size=16, progress=False)
    embed_catalog(tiny_demo, "autoencoder", limit=20, progress=False)
    first = open_space(tiny_demo, "autoencoder")
    assert len(search(first, image=photo, k=3).results) == 3
    train(tiny_demo, epochs=2, batch_size=16, progress=False)
    with pytest.raises(SearchError, match="autoencoder changed"):
        search(open_space(tiny_demo, "autoencoder"), image=photo, k=3)  # its vectors are the old model's
    embed_catalog(tiny_demo, "autoencoder", limit=5, progress=False)  # the new version, partly
    partial = open_space(tiny_demo, "autoencoder")
    assert partial.searched_version() == first.version and partial.vector_count() == 20  # the old one, whole
    assert "new version being embedded: 5/" in partial.stale_note()
    embed_catalog(tiny_demo, "autoencoder", progress=False)  # complete: it replaces the old one
    again = open_space(tiny_demo, "autoencoder")
    assert again.version != first.version and again.stored_versions() == {again.version}
    assert again.next_version() is None and again.stale_note() is None
    assert len(search(again, image=photo, k=3).results) == 3
    assert again.extractor().spec.version == again.version


def test_a_tuned_item_search_resolves_its_method_once(embedded_demo, monkeypatch):
    fast = tuning.TuneOptions(dim=16, epochs=2, patience=2, batch_size=64)
    bases = ["efficientnet_lite0", "color_hist"]
    tuning.tune(embedded_demo, "typecol", bases, ["category"], options=fast, force=True, progress=False)
    embed_catalog(embedded_demo, "typecol", progress=False)
    item = embedded_demo.execute("SELECT item_id FROM embeddings WHERE method = 'typecol' LIMIT 1").fetchone()[0]
    counts = {"specs": 0, "lookups": 0}
    real_spec_of = tuned.spec_of

    def spec_of(row):
        counts["specs"] += 1
        return real_spec_of(row)

    def statement(sql: str) -> None:
        counts["lookups"] += "tuned_methods" in sql

    monkeypatch.setattr(tuned, "spec_of", spec_of)
    embedded_demo.conn.set_trace_callback(statement)
    try:
        for backend in ("exact", "annoy"):
            counts.update(specs=0, lookups=0)
            hits = search(open_space(embedded_demo, "typecol", backend=backend), item_id=item, k=5).results
            assert len(hits) == 5 and all(h.method == "typecol" for h in hits)
            assert counts == {"specs": 1, "lookups": 1}, backend  # one SQL read and one digest of the head
    finally:
        embedded_demo.conn.set_trace_callback(None)


def test_the_backend_is_chosen_by_registered_name(embedded_demo, monkeypatch):
    space = open_space(embedded_demo, "color_hist")
    assert type(space.neighbour_index()).__name__ == "ExactNeighbours"
    monkeypatch.setattr(backends, "EXACT_LIMIT", 0)
    assert type(space.neighbour_index()).__name__ == "AnnoyNeighbours"
    assert type(space.neighbour_index({"a", "b"})).__name__ == "ExactNeighbours"  # a small filtered subset
    assert type(open_space(embedded_demo, "color_hist", backend="exact").neighbour_index()).__name__ == (
        "ExactNeighbours"
    )
    with pytest.raises(ValueError, match="unknown neighbour backend 'faiss'; known: exact, exact-subset, annoy"):
        open_space(embedded_demo, "color_hist", backend="faiss")


def test_re_tuning_never_mixes_vector_spaces(embedded_demo, tmp_path):
    from core.curation import tuning
    from core.curation.evaluate import evaluate
    from core.curation.export import export_similar
    from core.search.index import problem
    from core.search.near_duplicates import find_duplicates
    from core.search.queries import search
    from core.search.space import open_space

    fast = tuning.TuneOptions(epochs=3, dim=64)
    tuning.tune(embedded_demo, "t1", ["color_hist"], ["category"], options=fast, force=True, progress=False)
    embed_catalog(embedded_demo, "t1", progress=False)
    open_space(embedded_demo, "t1").build_index(progress=False)
    narrower = tuning.TuneOptions(epochs=3, dim=16)
    tuning.tune(embedded_demo, "t1", ["color_hist"], ["category"], options=narrower, force=True, progress=False)
    old = search(open_space(embedded_demo, "t1"), item_id="10129", k=5)  # not embedded since: the old vectors, said so
    assert len(old.results) == 5 and "searches use the old ones" in old.notes[0]
    photo = search(open_space(embedded_demo, "t1"), image=(DEMO / "images" / "10129.jpg").read_bytes(), k=5)
    assert len(photo.results) == 5  # read by the head that made the served vectors: one rule (issue 31.5)
    embed_catalog(embedded_demo, "t1", progress=False, limit=40)  # a partial re-embed: 40 new beside 300 old
    assert problem(embedded_demo, "t1") is None  # the served version, and its index, are unchanged
    hits = search(
        open_space(embedded_demo, "t1"),
        item_id=sorted(r[0] for r in embedded_demo.execute("SELECT id FROM items"))[0],
        k=50,
    )
    assert len(hits.results) == 50 and "new version being embedded: 40/300" in hits.notes[0]  # the complete old one
    out = tmp_path / "t1.csv"
    assert export_similar(open_space(embedded_demo, "t1"), 3, out, progress=False) == 300 * 3
    assert evaluate(open_space(embedded_demo, "t1"), "category", k=3).queries == 300
    find_duplicates(open_space(embedded_demo, "t1"), 0.99, progress=False)
    embed_catalog(embedded_demo, "t1", progress=False)  # complete: the 16-d version replaces the old one
    space = open_space(embedded_demo, "t1")
    assert space.searched_version() == space.version and space.stored_versions() == {space.version}
    assert space.build_index(progress=False).items == 300 and problem(embedded_demo, "t1") is None


def test_a_retrained_autoencoder_searches_only_its_new_vectors(tmp_path):
    from core.catalog.db import open_catalog
    from core.catalog.importers import import_csv
    from core.engines.autoencoder_training import train
    from core.search.queries import SearchError, search
    from core.search.space import open_space

    from helpers import small_styles

    db = open_catalog(tmp_path / "c.db")
    csv_path, folder = small_styles(tmp_path, 8)
    import_csv(db, csv_path, folder, progress=False)
    train(db, epochs=1, batch_size=8, progress=False)
    embed_catalog(db, "autoencoder", progress=False)
    train(db, epochs=2, batch_size=8, progress=False)  # a new checkpoint: a new version
    embed_catalog(db, "autoencoder", progress=False, limit=3)  # 3 of 8 with the new checkpoint
    space = open_space(db, "autoencoder")
    assert space.searched_version() != space.version and space.vector_count() == 8  # the old version, whole
    item = sorted(r[0] for r in db.execute("SELECT id FROM items"))[0]
    assert len(search(space, item_id=item, k=10).results) == 7
    photo = (folder / f"{item}.jpg").read_bytes()
    with pytest.raises(SearchError, match="cannot read a photo any more"):  # the old checkpoint is gone
        search(space, image=photo, k=10)
    embed_catalog(db, "autoencoder", progress=False)  # complete: only the new vectors are served
    space = open_space(db, "autoencoder")
    assert space.searched_version() == space.version and space.stored_versions() == {space.version}
    assert len(search(space, image=photo, k=10).results) == 8


def test_a_re_tuned_method_answers_item_and_photo_searches_from_its_complete_old_version(embedded_demo):
    """Issue 31 point 5: after a re-tune, `similar?method=typecol` and a photo search with it follow one
    rule: the complete served version answers both (the photo read by the previous head), until the
    new version is embedded whole."""
    from fastapi.testclient import TestClient

    from core.api.app import create_app

    fast = tuning.TuneOptions(dim=16, epochs=2, patience=2, batch_size=64)
    bases = ["efficientnet_lite0", "color_hist"]
    tuning.tune(embedded_demo, "typecol", bases, ["category"], options=fast, force=True, progress=False)
    embed_catalog(embedded_demo, "typecol", progress=False)
    first = open_space(embedded_demo, "typecol")
    photo = sorted((DEMO / "images").glob("*.jpg"))[0].read_bytes()
    before = [h.item_id for h in search(first, image=photo, k=5).results]
    tuning.tune(embedded_demo, "typecol", bases, ["colour"], options=fast, force=True, progress=False)
    embed_catalog(embedded_demo, "typecol", limit=10, progress=False)  # the new version, partly
    space = open_space(embedded_demo, "typecol")
    assert space.version != first.version and space.searched_version() == first.version
    assert [h.item_id for h in search(space, image=photo, k=5).results] == before
    assert "new version being embedded: 10/300" in space.stale_note()
    with TestClient(create_app(embedded_demo.path, keys=())) as client:
        item = client.get("/items/10129/similar", params={"method": "typecol"})
        upload = client.post("/search/image", params={"method": "typecol", "k": 5}, files={"file": ("p.jpg", photo)})
        assert item.status_code == upload.status_code == 200
        assert item.json()["version"] == upload.json()["version"] == first.version
    embed_catalog(embedded_demo, "typecol", progress=False)  # complete: the new version answers
    done = open_space(embedded_demo, "typecol")
    assert done.searched_version() == done.version and len(search(done, image=photo, k=5).results) == 5


def test_a_derived_method_runs_its_parts_shared_models(embedded_demo, monkeypatch):
    """Embedding hybrid (its parts first, in their own spaces), then photo searches with hybrid and with
    its deep part, build that part's model once in the process: hybrid reads photos with its parts'
    shared extractors, never a second copy of their models."""
    import importlib

    from core.methods import get_spec

    module, _, name = get_spec("efficientnet_lite0").factory.partition(":")
    family, built = importlib.import_module(module), []
    real = getattr(family, name)
    monkeypatch.setattr(family, name, lambda spec, catalog: built.append(spec.name) or real(spec, catalog))
    item_id, path = embedded_demo.execute("SELECT item_id, path FROM images ORDER BY item_id LIMIT 1").fetchone()
    with embedded_demo.conn:  # three items lose their deep and hybrid vectors: embedding hybrid embeds them again
        embedded_demo.conn.execute(
            "DELETE FROM embeddings WHERE method IN ('efficientnet_lite0', 'hybrid') "
            "AND item_id IN (SELECT item_id FROM images ORDER BY item_id LIMIT 3)"
        )
    hybrid = open_space(embedded_demo, "hybrid")
    assert embed_catalog(embedded_demo, "hybrid", progress=False).embedded == 3
    photo = open(path, "rb").read()
    for space in (hybrid, open_space(embedded_demo, "efficientnet_lite0")):
        assert search(space, image=photo, k=1).results[0].item_id == item_id
    assert built == ["efficientnet_lite0"]
    assert hybrid.part("efficientnet_lite0").extractor() is open_space(embedded_demo, "efficientnet_lite0").extractor()
