"""Annoy indices on the real demo vectors: manifest, atomic writes, staleness, damage, sharing, accuracy."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from dataclasses import asdict

import numpy as np
import pytest

from core.catalog.db import open_catalog
from core.catalog.vectors import get_vector, load_matrix, store
from core.search import index as index_mod
from core.search.index import IndexUnavailable, problem, read_manifest
from core.search.space import open_space

METHOD = "efficientnet_lite0"


def first_item(db) -> str:
    return db.execute("SELECT item_id FROM embeddings WHERE method = ? ORDER BY item_id", (METHOD,)).fetchone()[0]


def test_build_writes_files_and_a_complete_manifest(embedded_demo):
    info = open_space(embedded_demo, METHOD).build_index(trees=12, progress=False)
    folder = embedded_demo.index_dir
    assert sorted(p.name for p in folder.iterdir()) == [f"{METHOD}.ann", f"{METHOD}.ids", f"{METHOD}.json"]
    manifest = json.loads((folder / f"{METHOD}.json").read_text())
    ids, matrix = load_matrix(embedded_demo, METHOD)
    assert manifest["method"] == METHOD and manifest["versions"] == ["1"] and manifest["metric"] == "angular"
    assert (manifest["dim"], manifest["trees"], manifest["items"]) == (1280, 12, len(ids)) and len(ids) == 300
    assert manifest["build_seconds"] > 0 and manifest["built_at"]
    assert manifest["ann_bytes"] == (folder / f"{METHOD}.ann").stat().st_size
    from core.catalog.vectors import checksum

    assert manifest["checksum"] == checksum(ids, matrix)
    assert json.loads((folder / f"{METHOD}.ids").read_text()) == ids
    recorded = json.loads(
        embedded_demo.execute("SELECT manifest FROM indices WHERE method = ?", (METHOD,)).fetchone()[0]
    )
    assert recorded == manifest == asdict(info)
    assert problem(embedded_demo, METHOD) is None


def test_index_answers_like_exact_search(embedded_demo):
    """At 300 items the default search_k visits every item: Annoy equals exact cosine up to ties."""
    open_space(embedded_demo, METHOD).build_index(progress=False)
    loaded = open_space(embedded_demo, METHOD).loaded_index()
    ids, matrix = load_matrix(embedded_demo, METHOD)
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    for row in range(0, 300, 37):
        positions, sims = loaded.nearest(matrix[row], 10)
        exact = unit @ unit[row]
        top = np.argsort(-exact, kind="stable")[:10]
        assert sims == pytest.approx(exact[top].tolist(), abs=1e-5)
        assert set(positions) == set(top.tolist()) or sims[-1] == pytest.approx(exact[top[-1]], abs=1e-5)
        assert [loaded.ids[p] for p in positions][0] == ids[row]


def test_changed_or_deleted_vectors_are_searched_beside_the_index_without_a_rebuild(embedded_demo):
    open_space(embedded_demo, METHOD).build_index(progress=False)
    first = open_space(embedded_demo, METHOD).loaded_index()
    assert open_space(embedded_demo, METHOD).loaded_index() is first  # shared, not reloaded
    item = first_item(embedded_demo)
    flipped = -get_vector(embedded_demo, METHOD, item)
    store(embedded_demo, METHOD, "1", [(item, flipped, "changed")])
    assert problem(embedded_demo, METHOD) is None  # the build still serves: the change is in its delta
    space = open_space(embedded_demo, METHOD, backend="annoy")
    assert space.loaded_index() is first
    assert space.delta(first).changed == {item}
    assert space.neighbour_index().neighbours(flipped, 1)[0][0][0] == item  # found at once
    with embedded_demo.conn:
        embedded_demo.conn.execute("DELETE FROM embeddings WHERE method = ? AND item_id = ?", (METHOD, item))
    space = open_space(embedded_demo, METHOD, backend="annoy")
    assert item not in {i for i, _ in space.neighbour_index().neighbours(flipped, 20)[0]}
    assert open_space(embedded_demo, METHOD).compact(progress=False).items == 299


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("truncate", "index file missing or damaged"),
        ("delete_ann", "index file missing or damaged"),
        ("delete_ids", "index id list missing"),
        ("garbage_manifest", "no index built yet"),
    ],
)
def test_missing_or_damaged_files_are_detected_and_rebuilt(embedded_demo, damage, reason):
    open_space(embedded_demo, METHOD).build_index(trees=5, progress=False)
    folder = embedded_demo.index_dir
    ann, ids, manifest = (folder / f"{METHOD}{s}" for s in (".ann", ".ids", ".json"))
    if damage == "truncate":
        ann.write_bytes(ann.read_bytes()[:1000])
    elif damage == "delete_ann":
        ann.unlink()
    elif damage == "delete_ids":
        ids.unlink()
    else:
        manifest.write_text("{not json")
    assert problem(embedded_demo, METHOD) == reason
    with pytest.raises(IndexUnavailable):
        open_space(embedded_demo, METHOD).loaded_index(rebuild=False)
    loaded = open_space(embedded_demo, METHOD).loaded_index()
    assert loaded.annoy.get_n_items() == 300 and problem(embedded_demo, METHOD) is None


def test_same_size_corruption_is_caught_by_the_fingerprint_on_load(embedded_demo):
    open_space(embedded_demo, METHOD).build_index(trees=5, progress=False)
    ann = embedded_demo.index_dir / f"{METHOD}.ann"
    data, before = bytearray(ann.read_bytes()), ann.stat()
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x7f" * 64  # bit rot, same size, same inode and time
    ann.write_bytes(bytes(data))
    os.utime(ann, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert problem(embedded_demo, METHOD) is None  # the cheap check cannot see it
    with pytest.raises(IndexUnavailable, match="fingerprint"):
        open_space(embedded_demo, METHOD).loaded_index(rebuild=False)
    loaded = open_space(embedded_demo, METHOD).loaded_index()
    assert loaded.info.ann_digest == index_mod.file_digest(ann)


def test_a_build_that_dies_before_its_manifest_is_never_served(embedded_demo, monkeypatch):
    open_space(embedded_demo, METHOD).build_index(trees=5, progress=False)
    item = first_item(embedded_demo)
    store(embedded_demo, METHOD, "1", [(item, -get_vector(embedded_demo, METHOD, item), "changed")])

    def crash(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(index_mod, "checksum", crash)  # after .ann/.ids, before the manifest
    with pytest.raises(RuntimeError):
        open_space(embedded_demo, METHOD).build_index(trees=5, progress=False)
    monkeypatch.undo()
    folder = embedded_demo.index_dir
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert problem(embedded_demo, METHOD) is not None
    loaded = open_space(embedded_demo, METHOD).loaded_index()
    assert problem(embedded_demo, METHOD) is None and read_manifest(embedded_demo, METHOD).items == 300
    positions, sims = loaded.nearest(get_vector(embedded_demo, METHOD, item), 1)
    assert loaded.ids[positions[0]] == item and sims[0] == pytest.approx(1.0, abs=1e-5)


def test_two_catalogs_in_one_folder_never_serve_each_others_index(embedded_demo, tmp_path):
    other_path = tmp_path / "other.db"
    embedded_demo.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(tmp_path / "demo.db", other_path)
    other = open_catalog(other_path)
    try:
        item = first_item(other)
        own = get_vector(embedded_demo, METHOD, item)
        store(other, METHOD, "1", [(item, -own, "changed")])  # both counters move once:
        store(embedded_demo, METHOD, "1", [(item, own, "same")])  # only the build record differs
        open_space(embedded_demo, METHOD).build_index(trees=5, progress=False)
        open_space(other, METHOD).build_index(trees=5, progress=False)  # same folder: each catalog has its own indices/
        assert other.index_dir != embedded_demo.index_dir and problem(embedded_demo, METHOD) is None
        mine = open_space(embedded_demo, METHOD).loaded_index()
        positions, sims = mine.nearest(own, 1)
        assert mine.ids[positions[0]] == item and sims[0] == pytest.approx(1.0, abs=1e-5)
    finally:
        other.conn.close()


def test_one_methods_index_build_never_stalls_another_methods_index(embedded_demo, monkeypatch):
    started, release = threading.Event(), threading.Event()
    real_build = index_mod.build_index

    def slow_build(db, method, *args, **kwargs):  # the default method's build lasts until released
        if method == METHOD:
            started.set()
            assert release.wait(60)
        return real_build(db, method, *args, **kwargs)

    monkeypatch.setattr(index_mod, "build_index", slow_build)
    path = embedded_demo.path

    def load(method: str):
        db = open_catalog(path)  # a connection per thread, as a server's requests have
        try:
            return open_space(db, method).loaded_index().info.method
        finally:
            db.conn.close()

    got: dict[str, str] = {}
    slow = threading.Thread(target=lambda: got.update(slow=load(METHOD)), daemon=True)
    slow.start()
    assert started.wait(30)
    other = threading.Thread(target=lambda: got.update(other=load("color_hist")), daemon=True)
    other.start()
    other.join(timeout=60)  # built from scratch: 300 histograms take well under a second
    finished_first = not other.is_alive() and slow.is_alive()
    release.set()
    slow.join(timeout=60)
    assert finished_first, "color_hist's index waited for another method's build"
    assert got == {"slow": METHOD, "other": "color_hist"}


def test_no_vectors_says_what_to_run(catalog):
    with pytest.raises(IndexUnavailable, match="python -m core embed --method dino"):
        open_space(catalog, "dino").build_index(progress=False)


def test_an_index_round_trips_any_id(embedded_demo):
    from core.catalog.vectors import get_vector, store
    from core.search.index import problem

    odd = ["line\nbreak", "sep\u2028arator", "next\x85line", "cr\rlf", 'quote"\\back']
    vector = get_vector(embedded_demo, "color_hist", "10129")
    with embedded_demo.conn:
        embedded_demo.conn.executemany("INSERT INTO items (id, source) VALUES (?, 'csv')", [(i,) for i in odd])
    store(embedded_demo, "color_hist", "1", [(i, vector + n, "h") for n, i in enumerate(odd)])
    open_space(embedded_demo, "color_hist").build_index(progress=False)
    assert problem(embedded_demo, "color_hist") is None
    loaded = open_space(embedded_demo, "color_hist").loaded_index(rebuild=False)
    assert set(odd) <= set(loaded.ids) and len(loaded.ids) == 305
    assert np.allclose(loaded.vector(loaded.position["next\x85line"]), vector + 2)


def _priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a priority per thread is Linux's")
def test_an_index_build_gives_way_to_searches(embedded_demo, monkeypatch):
    """The build runs in a thread of its own at LOOKALIKE_BUILD_NICE, and the threads it starts (Annoy's)
    inherit it; the caller's own priority is untouched."""
    monkeypatch.setenv("LOOKALIKE_BUILD_NICE", "7")
    seen = []
    real = index_mod.make_annoy

    def watched(*args, **kwargs):
        inner = threading.Thread(target=lambda: seen.append(("started by the build", _priority())))
        inner.start()
        inner.join()
        seen.append((threading.get_native_id(), _priority()))
        return real(*args, **kwargs)

    monkeypatch.setattr(index_mod, "make_annoy", watched)
    mine = _priority()
    info = open_space(embedded_demo, METHOD).build_index(progress=False)
    assert info.items == 300 and problem(embedded_demo, METHOD) is None
    assert seen[0] == ("started by the build", max(7, mine))
    assert seen[1][0] != threading.get_native_id() and seen[1][1] == max(7, mine)
    assert _priority() == mine


def test_work_that_gives_way_hands_back_its_result_its_error_and_who_asked():
    import contextvars

    from core.priority import giving_way

    person = contextvars.ContextVar("person")
    person.set("ann@shop.example")
    assert giving_way(person.get) == "ann@shop.example"
    with pytest.raises(KeyError, match="nothing"):
        giving_way(lambda: {}["nothing"])


@pytest.mark.parametrize("value", ["20", "-1", "low"])
def test_a_build_priority_that_cannot_be_used_names_the_variable(embedded_demo, monkeypatch, value):
    from core.settings import SettingError

    monkeypatch.setenv("LOOKALIKE_BUILD_NICE", value)
    with pytest.raises(SettingError, match="LOOKALIKE_BUILD_NICE must be a whole number from 0 to 19"):
        open_space(embedded_demo, METHOD).build_index(progress=False)
    assert problem(embedded_demo, METHOD) == "no index built yet"
