"""Shared fixtures. Nothing in the test session may wait on the network."""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

from helpers import DEMO, SHARED, clear_caches, link_tree, opened_copy

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

    main = sys.modules["__main__"]  # AppTest swaps it for the app script; spawned processes read it
    real_setenv = monkeypatch.setenv

    def setenv(name: str, value: str, prepend: str | None = None) -> None:
        real_setenv(name, value, prepend)
        settings.reload()

    monkeypatch.setenv = setenv
    clear_caches()
    settings.reload()
    yield
    clear_caches()
    monkeypatch.undo()
    settings.reload()
    devices.select(None)  # a test's device choice does not outlive it
    sys.modules["__main__"] = main


DEFAULT_MODEL = "efficientnet_lite0"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test, so a fixture can tell whether its test passed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def run_folder(tmp_path_factory) -> Path:
    """This test run's own temporary folder: the one all pytest-xdist workers share (each worker's
    basetemp lies inside it), or the session's basetemp when the tests run in one process."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def locked(folder: Path) -> FileLock:
    """The run-wide lock of `folder`: workers take turns making or changing it."""
    return FileLock(f"{folder}.lock")


def made_once(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """The run's folder `name`, filled by `make(folder)` once per test run: by the first worker to
    ask while the others wait for it (a folder left half made by a failure is made anew)."""
    folder = run_folder(tmp_path_factory) / name
    with locked(folder):
        if not (folder / ".made").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            (folder / ".made").touch()
    return folder


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory) -> Path:
    """The run's LOOKALIKE_CACHE (converted and compiled models), shared by its tests and the processes
    they start: never the user's own ~/.cache; each model converts once per run."""
    folder = run_folder(tmp_path_factory) / "lookalike-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOOKALIKE_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def models_cache(tmp_path_factory) -> Path:
    """The default model's ONNX export, made once per test run; read and added to under its lock
    (`locked`), never written into in place."""
    folder = run_folder(tmp_path_factory) / "models-cache"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(autouse=True)
def models_folder(models_cache, tmp_path_factory, request, monkeypatch) -> Path:
    """Each test's own models folder (LOOKALIKE_MODELS), holding hard links to the default model's
    conversions that earlier tests made; what a passing test converts for the default is kept for the
    next ones. So the default converts once per run, and no test sees another's other weights."""
    from core import settings

    folder = tmp_path_factory.mktemp("models")
    with locked(models_cache):
        link_tree(models_cache, folder)
    monkeypatch.setenv("LOOKALIKE_MODELS", str(folder))
    settings.reload()
    yield folder
    report = getattr(request.node, "report_call", None)
    if report is not None and report.passed and (folder / DEFAULT_MODEL).is_dir():
        with locked(models_cache):
            keep(folder / DEFAULT_MODEL, models_cache / DEFAULT_MODEL)
    shutil.rmtree(folder, ignore_errors=True)


def keep(made: Path, cache: Path) -> None:
    """Add the default's export in `made` to the cache."""
    for onnx in made.glob(f"{DEFAULT_MODEL}-*.onnx"):
        if not (cache / onnx.name).exists():
            cache.mkdir(parents=True, exist_ok=True)
            os.link(onnx, cache / onnx.name)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "catalog.db"


@pytest.fixture
def catalog(db_path: Path):
    from core.catalog.db import open_catalog

    db = open_catalog(db_path)
    yield db
    db.conn.close()


@pytest.fixture(scope="session")
def imported_demo_path(tmp_path_factory) -> Path:
    """The committed demo slice (300 real product photos) imported once per test run, no vectors."""

    def make(folder: Path) -> None:
        from core.catalog.db import open_catalog
        from core.catalog.importers import import_csv

        db = open_catalog(folder / "demo.db")
        report = import_csv(db, DEMO / "styles.csv", DEMO / "images", progress=False)
        assert report.items == report.images_ok == 300, report.summary()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.conn.close()

    return made_once(tmp_path_factory, "imported", make) / "demo.db"


@pytest.fixture
def demo_catalog(imported_demo_path, db_path):
    """A catalog holding the demo slice: a private copy of the imported one (at `db_path`)."""
    assert not db_path.exists(), "demo_catalog is its test's catalog: do not ask for `catalog` too"
    yield from opened_copy(imported_demo_path, db_path)


@pytest.fixture
def small_demo(catalog, tmp_path):
    """A catalog of the first 64 demo items, for tests that train or embed and need no more photos."""
    return first_demo_items(catalog, tmp_path, 64)


@pytest.fixture
def tiny_demo(catalog, tmp_path):
    """A catalog of the first 32 demo items: two batches of 16, for tests that train the autoencoder
    (each step costs a second on two cores) and ask only that it learns, resumes and embeds."""
    return first_demo_items(catalog, tmp_path, 32)


def first_demo_items(catalog, folder: Path, n: int):
    """`catalog` with the first n demo items imported (their CSV and photos written under `folder`)."""
    from core.catalog.importers import import_csv

    from helpers import small_styles

    assert import_csv(catalog, *small_styles(folder, n), progress=False).items == n
    return catalog


@pytest.fixture(scope="session")
def embedded_demo_path(imported_demo_path, tmp_path_factory, models_cache) -> Path:
    """The demo slice embedded once per test run as `make app` does: the default, colour, hybrid
    (computed from those two) and text methods (the default's conversion is kept in `models_cache`)."""

    def make(folder: Path) -> None:
        from core import settings
        from core.catalog.db import open_catalog
        from core.demo import DEMO_METHODS
        from core.engines.embed import embed_catalog

        shutil.copy(imported_demo_path, folder / "demo.db")
        models = folder / "models"
        with locked(models_cache):
            link_tree(models_cache, models)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LOOKALIKE_MODELS", str(models))
            settings.reload()
            db = open_catalog(folder / "demo.db")
            for method in DEMO_METHODS:
                embed_catalog(db, method, progress=False)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.conn.close()
        settings.reload()
        with locked(models_cache):
            keep(models / DEFAULT_MODEL, models_cache / DEFAULT_MODEL)

    return made_once(tmp_path_factory, "embedded", make) / "demo.db"


@pytest.fixture
def embedded_demo(embedded_demo_path, tmp_path):
    """A private copy of the embedded demo catalog (tests may change it)."""
    yield from opened_copy(embedded_demo_path, tmp_path / "demo.db")


@pytest.fixture
def app_db(embedded_demo, monkeypatch):
    """The embedded demo catalog, indexed, as the app's catalog."""
    monkeypatch.setenv("LOOKALIKE_DB", str(embedded_demo.path))
    from core.search.space import open_space

    open_space(embedded_demo, "efficientnet_lite0").build_index(progress=False)
    return embedded_demo


FASHION_PHOTOS = 400  # enough for methods to differ on type and colour, embedded in about half a minute


@pytest.fixture(scope="session")
def fashion_photos_path(tmp_path_factory, models_cache) -> Path:
    """The first 400 of the shared labelled photos, embedded once per run with the cheap methods
    (efficientnet_lite0, color_hist and hybrid from those two)."""

    def make(folder: Path) -> None:
        from core import settings
        from core.catalog.db import open_catalog
        from core.catalog.importers import import_csv
        from core.engines.embed import embed_catalog

        source = SHARED / "fashion-products"
        with open(source / "styles.csv", newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))[: FASHION_PHOTOS + 1]
        with open(folder / "styles.csv", "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(lines)
        models = folder / "models"
        with locked(models_cache):
            link_tree(models_cache, models)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LOOKALIKE_MODELS", str(models))
            settings.reload()
            db = open_catalog(folder / "fashion.db")
            import_csv(db, folder / "styles.csv", source / "images", progress=False)
            for method in ("efficientnet_lite0", "color_hist", "hybrid"):
                embed_catalog(db, method, batch_size=64, progress=False)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.conn.close()
        settings.reload()

    return made_once(tmp_path_factory, "fashion_photos", make) / "fashion.db"


@pytest.fixture
def fashion_photos(fashion_photos_path, tmp_path):
    """A private copy of the 400 embedded shared photos (tests may label them)."""
    yield from opened_copy(fashion_photos_path, tmp_path / "fashion.db")


@pytest.fixture
def deleted_photos(catalog, tmp_path) -> list[str]:
    """Six items embedded with color_hist, then the photos of the first two deleted; their ids."""
    from core.catalog.importers import import_csv
    from core.engines.embed import embed_catalog

    from helpers import small_styles

    csv_path, folder = small_styles(tmp_path)
    import_csv(catalog, csv_path, folder, progress=False)
    embed_catalog(catalog, "color_hist", progress=False)
    gone = sorted(folder.iterdir())[:2]
    for path in gone:
        path.unlink()
    return [path.stem for path in gone]
