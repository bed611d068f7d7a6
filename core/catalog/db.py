"""Open the SQLite catalog: WAL, foreign keys, busy timeout and numbered migrations.

`open_catalog` returns a `Catalog`: the sqlite-utils database plus the folders that belong to it
(indices, thumbnails, exports, model weights), so no code rebuilds them from the connection.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING

from core.files.failures import damaged, read_only_line, recovery
from core.settings import settings


def _import_sqlite_utils():
    """sqlite-utils, imported with pandas hidden: it imports pandas (installed for Streamlit) only to
    map `pandas.Timestamp` columns, which nothing here inserts, and that is half a second of every
    command's start-up. A process that already has pandas (the app) imports it as it is."""
    import sys

    if "pandas" in sys.modules:
        import sqlite_utils
    else:
        sys.modules["pandas"] = None  # type: ignore[assignment]  # typeshed: None in sys.modules blocks an import
        try:
            import sqlite_utils
        finally:
            del sys.modules["pandas"]  # later imports of pandas work as usual
    return sqlite_utils


if TYPE_CHECKING:
    import sqlite_utils
else:
    sqlite_utils = _import_sqlite_utils()

log = logging.getLogger(__name__)

MIGRATIONS_DIR: Traversable = resources.files(__package__) / "migrations"  # package data: shipped in the wheel
_MIGRATION_NAME = re.compile(r"^(\d{4})_[\w-]+\.sql$")
BUSY_TIMEOUT_S = 30.0


class CatalogError(Exception):
    """A catalog problem worth one clear line to the user."""


CATALOG_SUFFIX = ".db"  # the documented catalog name: `data/shop.db` keeps its files in `data/shop/`
_SIDE_FILES = ("-wal", "-shm", "-journal")


def files_dir(catalog: str | Path) -> Path:
    """The folder of a catalog file's derived files, beside it and named after the whole file name, so
    two catalogs never share one: `data/shop.db` -> `data/shop/`, any other name gets `-files` added
    (`data/shop.sqlite` -> `data/shop.sqlite-files/`, `data/shop` -> `data/shop-files/`)."""
    path = Path(catalog).resolve()
    return path.with_name(path.stem if path.suffix == CATALOG_SUFFIX else f"{path.name}-files")


def legacy_files_dir(catalog: str | Path) -> Path | None:
    """The folder older versions gave a catalog not named `*.db` (its stem: `data/shop.sqlite` ->
    `data/shop/`, shared with `data/shop.db`); None when that is the folder it has now."""
    path = Path(catalog).resolve()
    old = path.with_name(path.stem) if path.suffix else None
    return None if old is None or old == files_dir(path) else old


def sole_owner(path: Path, folder: Path) -> bool:
    """Whether `path` is the only catalog file beside it whose older folder was `folder` (no `shop.db`,
    no other `shop.*`), so that folder's files are this catalog's alone."""
    for other in path.parent.glob(f"{glob_escape(folder.name)}.*"):
        if other != path and other.is_file() and not other.name.endswith(_SIDE_FILES) and other.stem == folder.name:
            return False
    return True


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


DERIVED = {"indices", "thumbnails", "exports", "trained", "autoencoder", "photos"}  # what such a folder holds


def _ours(folder: Path) -> bool:
    """Whether `folder` holds only what Lookalike writes there (never a user's own folder of the same name)."""
    try:
        return folder.is_dir() and not folder.is_symlink() and all(e.name in DERIVED for e in folder.iterdir())
    except OSError:
        return False


def _own_files_dir(path: Path, writable: bool) -> Path:
    """This catalog's folder: `files_dir`, after taking over the folder an older version gave it when
    the folder was this catalog's alone and holds only Lookalike's files (renamed on a writable open,
    read in place otherwise)."""
    new, old = files_dir(path), legacy_files_dir(path)
    if old is None or new.exists() or not _ours(old) or not sole_owner(path, old):
        return new
    if not writable:
        return old
    try:
        old.rename(new)
        log.info("moved %s to %s (each catalog's files are its own)", old, new)
        return new
    except OSError as exc:
        log.warning("could not move %s to %s, reading it in place: %s", old, new, exc)
        return old


class Catalog(sqlite_utils.Database):
    """A catalog connection that knows its file and the folders beside it."""

    def __init__(self, conn: sqlite3.Connection, path: Path, read_only: bool = False):
        super().__init__(conn)
        self.path = path.resolve()
        self.read_only = read_only  # opened for reading only: nothing may be written, not even an index
        self._files_dir = files_dir(self.path)  # open_catalog takes over an older folder once the file is ours

    @property
    def data_dir(self) -> Path:
        """The folder holding the catalog (and the shared models folder and app preferences)."""
        return self.path.parent

    @property
    def files_dir(self) -> Path:
        """This catalog's own derived files, beside it: `data/shop.db` -> `data/shop/` holding
        indices/, thumbnails/, exports/ and trained/ (two catalogs in one folder share none; see files_dir)."""
        return self._files_dir

    @property
    def index_dir(self) -> Path:
        return self.files_dir / "indices"

    @property
    def thumbnails_dir(self) -> Path:
        return self.files_dir / "thumbnails"

    @property
    def exports_dir(self) -> Path:
        return self.files_dir / "exports"

    @property
    def trained_dir(self) -> Path:
        """Models trained on this catalog's own photos (the autoencoder)."""
        return self.files_dir / "trained"

    @property
    def models_dir(self) -> Path:
        """Downloaded model weights, shared by the catalogs of a folder: `$LOOKALIKE_MODELS`, else `<data folder>/models`."""
        return settings().models or self.data_dir / "models"


def inserted_id(cursor: sqlite3.Cursor) -> int:
    """The rowid an INSERT just gave its row."""
    if cursor.lastrowid is None:
        raise CatalogError("the row was not inserted")
    return cursor.lastrowid


def busy(path: str | Path, wait_s: float = 1.0) -> bool:
    """True when another connection holds the catalog's write lock for longer than `wait_s` (an
    import or embedding under way): a caller can then say so at once instead of waiting."""
    conn = sqlite3.connect(Path(path), timeout=wait_s)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc) or "busy" in str(exc)
    finally:
        conn.close()


def _busy(exc: sqlite3.OperationalError) -> bool:
    """SQLite answered that another connection holds the lock."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc)


@contextmanager
def writing(db: sqlite_utils.Database, wait_s: float = BUSY_TIMEOUT_S) -> Iterator[sqlite3.Connection]:
    """One short write transaction that holds the write lock from its start (BEGIN IMMEDIATE), so what
    it reads cannot change before it writes: read-then-write under one lock. Waits for another
    writer up to `wait_s`, also where SQLite answers busy without waiting; commits at the end, rolls
    back on an exception. Inside a transaction already open on this connection it joins that one."""
    conn = db.conn
    if conn.in_transaction:
        yield conn
        return
    deadline, pause = time.monotonic() + wait_s, 0.01
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
            log.debug("catalog busy at BEGIN, retrying: %s", exc)
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def migrations() -> list[tuple[int, Traversable]]:
    """The numbered migration files, in order."""
    found = []
    for path in sorted(MIGRATIONS_DIR.iterdir(), key=lambda p: p.name):
        match = _MIGRATION_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return found


def schema_version(db: sqlite_utils.Database) -> int:
    """The highest migration applied to this database (0 for a new one)."""
    if "schema_migrations" not in db.table_names():
        return 0
    row = db.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return row[0] or 0


def writable(path: Path) -> bool:
    """Whether this process may write the catalog file and its folder (SQLite writes -wal/-shm beside it)."""
    return os.access(path, os.W_OK) and os.access(path.resolve().parent, os.W_OK)


def _read_only_uri(path: Path) -> str:
    """SQLite's read-only URI: `mode=ro`, or `immutable=1` where the folder cannot be written (a
    read-only mount: SQLite could not make the -shm file `mode=ro` needs) and no WAL holds changes."""
    uri = path.resolve().as_uri()
    wal = path.with_name(path.name + "-wal")
    folder_writable = os.access(path.resolve().parent, os.W_OK)
    if not folder_writable and not (wal.exists() and wal.stat().st_size > 0):
        return f"{uri}?immutable=1"
    return f"{uri}?mode=ro"


def open_catalog(
    path: str | Path | None = None,
    *,
    create: bool = True,
    read_only: bool = False,
    migrate: bool = True,
    needs_write: bool = False,
) -> Catalog:
    """Open the catalog at `path` (default: the settings'), upgraded to the latest schema.

    A new catalog is made only in a missing or empty file, and only with `create`. An SQLite file
    that another application made is refused before anything is written to it. `read_only` (or
    a catalog this process may not write: its file or folder, e.g. on a read-only mount) opens it for
    reading only: nothing is created or migrated. `needs_write` (a command that writes: imports,
    embedding, indexing, tuning, label imports) refuses such a catalog in one line saying it is read-only.
    """
    path = Path(path or settings().db)
    if path.is_dir():
        raise CatalogError(f"{path} is a folder; give the catalog file, e.g. {path / 'catalog.db'}")
    exists = path.is_file() and path.stat().st_size > 0
    if not exists and (read_only or not create):
        raise CatalogError(
            f"no catalog at {path}; make one with `python -m core import-csv` (or import-farfetch, or demo)"
        )
    if exists and not writable(path):
        if needs_write:
            raise CatalogError(read_only_line(path))
        read_only = True
    try:
        if read_only:
            conn = sqlite3.connect(_read_only_uri(path), uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    except sqlite3.Error as exc:
        raise CatalogError(f"cannot open the catalog {path} (SQLite says: {exc})") from exc
    db = Catalog(conn, path, read_only)
    try:
        if exists:
            check_ours(db, path)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        if read_only:
            _check_current(db, path)
        else:
            db.enable_wal()
            conn.execute("PRAGMA synchronous = NORMAL")
            if migrate:
                apply_migrations(db)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if damaged(exc):
            raise CatalogError(f"the catalog {path} is damaged (SQLite says: {exc}); {recovery(path)}") from exc
        raise CatalogError(f"{path} is not a Lookalike catalog, or is damaged (SQLite says: {exc})") from exc
    except CatalogError:
        conn.close()
        raise
    db._files_dir = _own_files_dir(db.path, writable=not read_only)
    return db


def check_ours(db: sqlite_utils.Database, path: Path) -> None:
    """Refuse an SQLite file with tables that Lookalike's first migration did not make."""
    tables = db.table_names()
    if not tables:
        return
    first = (
        db.execute("SELECT name FROM schema_migrations WHERE version = 1").fetchone()
        if "schema_migrations" in tables
        else None
    )
    if first is None or first[0] != migrations()[0][1].name:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise CatalogError(
            f"{path} belongs to another application (tables: {shown}); Lookalike leaves it "
            "untouched: choose another catalog file"
        )


def _check_current(db: sqlite_utils.Database, path: Path) -> None:
    """A catalog opened read-only cannot be migrated: it must already be at this schema."""
    newest = migrations()[-1][0]
    if schema_version(db) > newest:
        raise _newer(schema_version(db), newest)
    if schema_version(db) != newest:
        raise CatalogError(
            f"{path} has schema version {schema_version(db)}, this Lookalike reads {newest}; "
            "open it once with write access to upgrade it"
        )


def _newer(version: int, newest: int) -> CatalogError:
    return CatalogError(
        f"This catalog has schema version {version}, newer than this Lookalike knows "
        f"({newest}); upgrade Lookalike to open it."
    )


def apply_migrations(db: sqlite_utils.Database) -> list[int]:
    """Apply every migration newer than the database's schema; return the versions applied."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at TEXT NOT NULL DEFAULT (datetime('now')))"
    )
    known = migrations()
    current = schema_version(db)
    newest = known[-1][0] if known else 0
    if current > newest:
        raise _newer(current, newest)
    applied = []
    for version, path in known:
        if version <= current:
            continue
        script = path.read_text(encoding="utf-8")
        conn = db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-check under the write lock: another process may have migrated meanwhile.
            if schema_version(db) >= version:
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (version, path.name))
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        log.info("applied migration %s", path.name)
        applied.append(version)
    return applied


def _statements(script: str) -> list[str]:
    """Split a migration script into complete statements (sqlite3.complete_statement)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()):
        raise CatalogError(f"incomplete statement at the end of a migration: {buffer[:60]!r}")
    return statements
