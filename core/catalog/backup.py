"""Back up a catalog while it is in use: SQLite's online backup API, checked, then moved into place.

The copy is one consistent state of the catalog (a single read transaction: in WAL mode writers go
on meanwhile), written to a temporary file beside the destination, checked with `PRAGMA
integrity_check`, made a self-contained file (no -wal beside it), flushed to disk and renamed over
the destination: a reader of the destination sees the previous backup or the whole new one.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.catalog.db import BUSY_TIMEOUT_S, CATALOG_SUFFIX, CatalogError, check_ours, schema_version, sqlite_utils
from core.files.atomic import atomic_path
from core.files.output_path import CATALOG_SUFFIXES

log = logging.getLogger(__name__)
STAMP = "%Y%m%dT%H%M%SZ"  # a backup's name in a folder: <catalog stem>-<UTC time>.db


@dataclass(frozen=True)
class Backup:
    """A finished backup: where it is, how big, the schema it holds, how long it took."""

    path: Path
    bytes: int
    schema_version: int
    seconds: float
    removed: tuple[Path, ...] = ()  # older backups let go by `keep`

    def summary(self) -> str:
        kept = f"; removed {len(self.removed)} older backup(s)" if self.removed else ""
        return (
            f"backed up to {self.path} ({self.bytes / 1e6:.1f} MB, schema version {self.schema_version}, "
            f"integrity ok) in {self.seconds:.1f}s{kept}"
        )


def backup_catalog(catalog: str | Path, dest: str | Path, *, force: bool = False, keep: int | None = None) -> Backup:
    """Copy the catalog file `catalog` to `dest` while others may be writing to it.

    `dest` is a file, or a folder (existing, or given with a trailing slash) that receives
    `<catalog stem>-<UTC time>.db`; `keep` then leaves only that many newest backups of this catalog
    there. An existing file is replaced only with `force`. The catalog is read as it is, not migrated:
    a backup taken before an upgrade holds the old schema. CatalogError for anything refused.
    """
    started = time.perf_counter()
    source = Path(catalog).resolve()
    if not source.is_file() or source.stat().st_size == 0:
        raise CatalogError(f"no catalog at {source}")
    target = _target(source, Path(dest), str(dest).endswith(("/", os.sep)))
    if target.exists() and not force:
        raise CatalogError(f"{target} exists; give another name, a folder, or --force to replace it")
    if keep is not None and keep < 1:
        raise CatalogError("keep must be at least 1")
    try:
        version = _copy(source, target)
    except sqlite3.Error as exc:
        raise CatalogError(f"backup of {source} failed (SQLite says: {exc}); nothing was replaced") from exc
    except OSError as exc:
        raise CatalogError(f"cannot write the backup {target}: {exc.strerror or exc}") from exc
    removed = _prune(source, target.parent, keep) if keep else ()
    done = Backup(target, target.stat().st_size, version, time.perf_counter() - started, removed)
    log.info("%s", done.summary())
    return done


def _target(source: Path, dest: Path, folder: bool) -> Path:
    """The backup file for `dest`; refuses the catalog's own files."""
    if folder or dest.is_dir():
        dest = dest / f"{source.stem}-{datetime.now(UTC).strftime(STAMP)}{CATALOG_SUFFIX}"
    dest = dest.resolve()
    if dest in {source.with_name(source.name + suffix) for suffix in CATALOG_SUFFIXES}:
        raise CatalogError(f"{dest} is the catalog itself (or its journal): choose another destination")
    return dest


def _copy(source: Path, target: Path) -> int:
    """The online backup into a temporary file, checked and flushed, then renamed to `target`; the schema version."""
    reader = sqlite3.connect(source.as_uri() + "?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        check_ours(sqlite_utils.Database(reader), source)
        with atomic_path(target, suffix=".backup") as tmp:
            copy = sqlite3.connect(tmp)
            try:
                reader.backup(copy)  # all pages in one step: one snapshot, writers not held up (WAL)
                copy.execute("PRAGMA journal_mode = DELETE")  # a single file, readable on its own
                check = [row[0] for row in copy.execute("PRAGMA integrity_check")]
                if check != ["ok"]:
                    raise CatalogError(f"the backup of {source} failed its integrity check: {'; '.join(check[:3])}")
                version = schema_version(sqlite_utils.Database(copy))
            finally:
                copy.close()
            _flush(tmp)
        _flush(target.parent)
        return version
    finally:
        reader.close()


def _flush(path: Path) -> None:
    """Make a file's (or a folder's entries') writes durable before relying on them."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(source: Path, folder: Path, keep: int) -> tuple[Path, ...]:
    """Remove all but the `keep` newest timestamped backups of `source` in `folder`."""
    ours = []
    for path in folder.glob(f"{source.stem}-*{CATALOG_SUFFIX}"):
        stamp = path.name[len(source.stem) + 1 : -len(CATALOG_SUFFIX)]
        try:
            datetime.strptime(stamp, STAMP)
        except ValueError:
            continue  # not one of ours: never removed
        ours.append(path)
    old = sorted(ours)[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    return tuple(old)
