"""Helpers shared by the benchmarks: the real data set, a reusable catalog, the docs table writer."""

from __future__ import annotations

import platform
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SHARED = ROOT.parent / "shared" / "data"
FASHION = SHARED / "fashion-products"
DOCS = ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU, Python {platform.python_version()}"


def fashion_catalog(path: Path):
    """A catalog of the 4,000 labelled photos (imported once, reused between runs)."""
    from core.catalog.db import open_catalog
    from core.catalog.importers import import_csv

    if not FASHION.is_dir():
        raise SystemExit(f"{FASHION} is absent: this benchmark needs the shared data set")
    db = open_catalog(path)
    if db.execute("SELECT count(*) FROM items").fetchone()[0] < 4000:
        import_csv(db, FASHION / "styles.csv", FASHION / "images", progress=False)
    return db


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between `<!-- name -->` markers in docs/benchmarks.md."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOCS.write_text(text, encoding="utf-8")
