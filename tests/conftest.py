"""Shared fixtures. Nothing in the test session may wait on the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import DEMO

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch):
    """Each test starts without indices or vectors cached by an earlier one (models stay loaded),
    and re-reads settings when it sets one."""
    import sys

    from core import settings
    from core.methods import devices
    from core.search import caches

    main = sys.modules["__main__"]  # AppTest swaps it for the app script; spawned processes read it
    real_setenv = monkeypatch.setenv

    def setenv(name: str, value: str, prepend: str | None = None) -> None:
        real_setenv(name, value, prepend)
        settings.reload()

    monkeypatch.setenv = setenv
    caches.clear(caches.INDICES, caches.MATRICES, caches.COUNTS, caches.FIELDS)
    settings.reload()
    yield
    caches.clear(caches.INDICES, caches.MATRICES, caches.COUNTS, caches.FIELDS)
    monkeypatch.undo()
    settings.reload()
    devices.select(None)  # a test's device choice does not outlive it
    sys.modules["__main__"] = main


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "catalog.db"


@pytest.fixture
def catalog(db_path: Path):
    from core.catalog.db import open_catalog

    db = open_catalog(db_path)
    yield db
    db.conn.close()


@pytest.fixture
def demo_catalog(catalog):
    """A catalog holding the committed demo slice (a few hundred real product photos)."""
    from core.catalog.importers import import_csv

    report = import_csv(catalog, DEMO / "styles.csv", DEMO / "images", progress=False)
    assert report.items > 0
    return catalog


@pytest.fixture(scope="session")
def embedded_demo_path(tmp_path_factory) -> Path:
    """The demo slice embedded once per session as `make app` does: the default, colour, hybrid
    (computed from those two) and text methods."""
    from core.catalog.db import open_catalog
    from core.catalog.importers import import_csv
    from core.demo import DEMO_METHODS
    from core.engines.embed import embed_catalog

    path = tmp_path_factory.mktemp("embedded") / "demo.db"
    db = open_catalog(path)
    import_csv(db, DEMO / "styles.csv", DEMO / "images", progress=False)
    for method in DEMO_METHODS:
        embed_catalog(db, method, progress=False)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    return path


@pytest.fixture
def embedded_demo(embedded_demo_path, tmp_path):
    """A private copy of the embedded demo catalog (tests may change it)."""
    import shutil

    from core.catalog.db import open_catalog

    path = tmp_path / "demo.db"
    shutil.copy(embedded_demo_path, path)
    db = open_catalog(path)
    yield db
    db.conn.close()


@pytest.fixture
def app_db(embedded_demo, monkeypatch):
    """The embedded demo catalog, indexed, as the app's catalog."""
    monkeypatch.setenv("LOOKALIKE_DB", str(embedded_demo.path))
    from core.search.space import open_space

    open_space(embedded_demo, "efficientnet_lite0").build_index(progress=False)
    return embedded_demo
