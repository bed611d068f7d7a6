"""Open the SQLite catalog: WAL, foreign keys, busy timeout and numbered migrations.

`open_catalog` returns a `Catalog`: the sqlite-utils database plus the folders that belong to it
(indices, thumbnails, exports, model weights), so no code rebuilds them from the connection.
"""
from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

import sqlite_utils

from core.settings import settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[\w-]+\.sql$")
BUSY_TIMEOUT_S = 30.0


class CatalogError(Exception):
    """A catalog problem worth one clear line to the user."""


class Catalog(sqlite_utils.Database):
    """A catalog connection that knows its file and the folders beside it."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        super().__init__(conn)
        self.path = path.resolve()

    @property
    def data_dir(self) -> Path:
        """The folder holding the catalog: indices, thumbnails, exports and models live here."""
        return self.path.parent

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "indices"

    @property
    def thumbnails_dir(self) -> Path:
        return self.data_dir / "thumbnails"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def models_dir(self) -> Path:
        """Model weights: `$LOOKALIKE_MODELS`, else `<data folder>/models`."""
        return settings().models or self.data_dir / "models"


def migrations() -> list[tuple[int, Path]]:
    """The numbered migration files, in order."""
    found = []
    for path in sorted(MIGRATIONS_DIR.iterdir()):
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


def open_catalog(path: str | Path | None = None, *, migrate: bool = True) -> Catalog:
    """Open (creating if needed) the catalog at `path` (default: the settings'), upgraded to the latest schema."""
    path = Path(path or settings().db)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    db = Catalog(conn, path)
    try:
        db.enable_wal()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise CatalogError(f"{path} is not a Lookalike catalog (SQLite says: {exc})") from exc
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    if migrate:
        apply_migrations(db)
    return db


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
        raise CatalogError(
            f"This catalog has schema version {current}, newer than this Lookalike knows "
            f"({newest}); upgrade Lookalike to open it."
        )
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
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (version, path.name)
            )
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
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        raise CatalogError(f"incomplete statement at the end of a migration: {buffer[:60]!r}")
    return statements
