"""Catalog database: migrations applied on open, upgrades, refusal of newer schemas, concurrency."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from core.catalog import db as catalog_db
from core.catalog.db import CatalogError, migrations, open_catalog, schema_version


def test_new_catalog_has_latest_schema_and_pragmas(db_path):
    db = open_catalog(db_path)
    assert schema_version(db) == migrations()[-1][0]
    assert {"items", "images", "embeddings", "embedding_failures", "indices"} <= set(db.table_names())
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    recorded = [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == [v for v, _ in migrations()]


def test_reopening_applies_nothing_twice(db_path):
    open_catalog(db_path).conn.close()
    db = open_catalog(db_path)
    assert catalog_db.apply_migrations(db) == []


def test_older_database_is_upgraded(db_path, tmp_path, monkeypatch):
    # Build a catalog that only knows migration 1, then open it with the full set.
    only_first = tmp_path / "migrations"
    only_first.mkdir()
    first = migrations()[0][1]
    (only_first / first.name).write_text(first.read_text())
    monkeypatch.setattr(catalog_db, "MIGRATIONS_DIR", only_first)
    old = open_catalog(db_path)
    assert schema_version(old) == 1
    old.execute("INSERT INTO items (id, source) VALUES ('a', 'csv')")
    old.conn.commit()
    old.conn.close()
    monkeypatch.undo()
    db = open_catalog(db_path)
    assert schema_version(db) == migrations()[-1][0]
    assert db.execute("SELECT id FROM items").fetchall() == [("a",)]


def test_newer_schema_is_refused_with_clear_error(db_path):
    db = open_catalog(db_path)
    db.execute("INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future.sql')")
    db.conn.commit()
    db.conn.close()
    with pytest.raises(CatalogError, match="newer than this Lookalike knows"):
        open_catalog(db_path)


def test_not_a_database_gives_catalog_error(tmp_path):
    bogus = tmp_path / "notes.db"
    bogus.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(CatalogError, match="not a Lookalike catalog"):
        open_catalog(bogus)


def test_two_connections_write_concurrently_without_loss(db_path):
    open_catalog(db_path).conn.close()
    errors: list[Exception] = []

    def writer(prefix: str) -> None:
        db = open_catalog(db_path)
        try:
            for i in range(200):
                with db.conn:
                    db.conn.execute("INSERT INTO items (id, source) VALUES (?, 'csv')", (f"{prefix}{i}",))
        except sqlite3.Error as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert open_catalog(db_path).execute("SELECT count(*) FROM items").fetchone()[0] == 400


def test_foreign_keys_cascade_images_with_items(catalog):
    catalog.execute("INSERT INTO items (id, source) VALUES ('x', 'csv')")
    catalog.execute("INSERT INTO images (item_id, role, status) VALUES ('x', 'primary', 'missing')")
    catalog.execute("DELETE FROM items WHERE id = 'x'")
    assert catalog.execute("SELECT count(*) FROM images").fetchone()[0] == 0
    with pytest.raises(sqlite3.IntegrityError):
        catalog.execute("INSERT INTO images (item_id, role, status) VALUES ('ghost', 'primary', 'ok')")
