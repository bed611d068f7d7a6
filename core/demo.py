"""Set up the demo catalog: the committed 300-photo slice, embedded and indexed with every method
that needs no download."""

from __future__ import annotations

from pathlib import Path

from core.catalog.db import Catalog
from core.catalog.importers import import_csv
from core.engines.prepare import prepare_method
from core.files.report import ImportReport
from core.search.space import open_space
from core.settings import DEFAULT_METHOD

DEMO_DIR = Path(__file__).resolve().parent / "demo_data"  # the repository's demo/ (a link), shipped in the wheel
DEMO_METHODS = (DEFAULT_METHOD, "color_hist", "hybrid", "minilm")  # none needs a download; hybrid after its parts


def setup_demo(db: Catalog, progress: bool = True) -> ImportReport:
    """Import the demo slice (idempotent), embed what is missing, and build the indices."""
    report = import_csv(db, DEMO_DIR / "styles.csv", DEMO_DIR / "images", progress=progress)
    for method in DEMO_METHODS:
        prepare_method(open_space(db, method), progress=progress)
    return report
