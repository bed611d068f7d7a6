"""Sync a shop's feed: items new and changed are imported, items missing from it are marked gone.

A gone item keeps its labels, pins, history and vectors, but searches, exports, the API,
near-duplicates and suggestions never return it (core/catalog/vectors.py leaves it out of every
read), and the Catalog page shows it as gone. When a later feed lists it again it is live again
(*back*). A feed only removes items of its own kind (a Farfetch feed, Farfetch items; a product
CSV, CSV items). A feed that would remove more than `max_removal` of them (default 20%) is refused
before anything is written, unless `allow_mass_removal`: a truncated feed must not empty the shop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.catalog import ids
from core.catalog.db import Catalog
from core.catalog.importers import Columns, _read_header, _read_rows, import_csv, import_farfetch
from core.files.report import ImportReport

MAX_REMOVAL = 0.2  # the share of a source's live items a feed may remove without --allow-mass-removal
_CHUNK = 900  # ids per statement, under SQLite's bound-parameter limit


class MassRemoval(ValueError):
    """A feed that would remove more of the catalog than allowed (nothing was written)."""


@dataclass
class FeedSync:
    """What a sync did to the catalog's items: the import's counts, plus gone and back."""

    source: str  # farfetch or csv
    imported: ImportReport
    gone: int = 0  # live items missing from the feed, now gone
    back: int = 0  # gone items listed again, live again (also counted as updated or unchanged)
    gone_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.imported.ok

    def as_dict(self) -> dict:
        data = asdict(self)
        data["imported"] = self.imported.as_dict()
        return data

    def summary(self) -> str:
        r = self.imported
        return (
            f"{r.items} items in the feed ({r.rows} rows): {r.new} new, {r.updated} updated, {r.unchanged} unchanged, "
            f"{self.gone} gone, {self.back} back; {len(r.problems)} problem(s) reported"
        )


def feed_source(csv_path: Path) -> str:
    """`farfetch` for a Farfetch listings file, else `csv` (a product CSV)."""
    header, problem = _read_header(csv_path)
    return "farfetch" if not problem and "id" in header and "images.cutOut" in header else "csv"


def _feed_ids(csv_path: Path, id_column: str) -> set[str]:
    """Every id the feed lists (rows that fail to import still count: they are not removed)."""
    listed = set()
    for _, row in _read_rows(csv_path, ImportReport()):
        value = ids.normalise(row.get(id_column) or "")
        if value:
            listed.add(value)
    return listed


def _live_and_gone(db: Catalog, source: str) -> tuple[set[str], set[str]]:
    rows = db.execute("SELECT id, gone_at IS NOT NULL FROM items WHERE source = ?", (source,)).fetchall()
    return {i for i, gone in rows if not gone}, {i for i, gone in rows if gone}


def _mark(db: Catalog, item_ids: list[str], gone: bool) -> None:
    """Mark items gone (now) or live again, in one transaction."""
    value = "datetime('now')" if gone else "NULL"
    with db.conn:
        for start in range(0, len(item_ids), _CHUNK):
            chunk = item_ids[start : start + _CHUNK]
            db.conn.execute(f"UPDATE items SET gone_at = {value} WHERE id IN ({','.join('?' * len(chunk))})", chunk)


def sync_feed(
    db: Catalog,
    csv_path: str | Path,
    images_dir: str | Path | None = None,
    *,
    columns: Columns | None = None,
    download: bool = False,
    allow_private_hosts: bool = False,
    allow_mass_removal: bool = False,
    max_removal: float = MAX_REMOVAL,
    progress: bool = True,
) -> FeedSync:
    """Import a feed (a Farfetch listings file or a product CSV, found from its header) and mark the
    items of its kind it no longer lists gone, those it lists again back. MassRemoval (nothing
    written) when it would remove more than `max_removal` of them, unless `allow_mass_removal`.
    A feed with no usable row changes nothing (its report says why)."""
    csv_path = Path(csv_path)
    if not 0 <= max_removal <= 1:
        raise ValueError(f"the largest share a feed may remove is between 0 and 1, not {max_removal}")
    source = feed_source(csv_path) if csv_path.is_file() else "csv"
    listed = (
        _feed_ids(csv_path, "id" if source == "farfetch" else (columns or Columns()).id)
        if csv_path.is_file()
        else set()
    )
    live, gone = _live_and_gone(db, source)
    leaving = sorted(live - listed) if listed else []
    if live and len(leaving) > max_removal * len(live) and not allow_mass_removal:
        raise MassRemoval(
            f"the feed would remove {len(leaving)} of {len(live)} items ({len(leaving) / len(live):.0%}), more than "
            f"{max_removal:.0%}; nothing changed (a truncated feed?). Check it, or sync with --allow-mass-removal"
        )
    if source == "farfetch":
        report = import_farfetch(
            db, csv_path, images_dir, download=download, progress=progress, allow_private_hosts=allow_private_hosts
        )
    else:
        report = import_csv(db, csv_path, images_dir, columns, progress=progress)
    result = FeedSync(source, report)
    if not report.ok:
        return result  # nothing usable in the feed: nothing is removed
    returning = sorted(gone & listed)
    _mark(db, leaving, gone=True)
    _mark(db, returning, gone=False)
    result.gone, result.back, result.gone_ids = len(leaving), len(returning), leaving
    return result
