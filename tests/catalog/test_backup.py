"""Backups of a catalog in use (core/catalog/backup.py): consistent while writers run, checked, atomic,
pruned, and the `backup` command."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from core.catalog import backup as backup_module
from core.catalog.backup import backup_catalog
from core.catalog.db import CatalogError, open_catalog, schema_version
from core.curation.labels import Query, add_label

from helpers import one_line, run_here


def test_a_backup_taken_while_labellers_write_is_whole_and_consistent(demo_catalog, db_path, tmp_path):
    items = [i for (i,) in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 101")]
    stop, errors = threading.Event(), []

    def labeller(name: str) -> None:
        db = open_catalog(db_path)
        try:
            n = 0
            while not stop.is_set():
                add_label(db, Query.item(items[0]), items[1 + n % 100], "color_hist", 1, n % 2 == 0, f"{name}{n}")
                n += 1
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            db.conn.close()

    writers = [threading.Thread(target=labeller, args=(name,)) for name in ("ana", "ben")]
    for w in writers:
        w.start()
    try:
        while demo_catalog.execute("SELECT count(*) FROM labels").fetchone()[0] < 20:
            time.sleep(0.05)
        taken = [backup_catalog(db_path, tmp_path / "backups" / f"{n}.db") for n in range(3)]
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert errors == []
    counts = []
    for done in taken:
        assert done.path.is_file() and not done.path.with_name(done.path.name + "-wal").exists()
        copy = sqlite3.connect(done.path)
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one file, readable on its own
        labels, last = copy.execute("SELECT count(*), max(id) FROM labels").fetchone()
        assert labels == last  # one moment's state: every click committed before it, none after
        counts.append(labels)
        copy.close()
        opened = open_catalog(done.path, read_only=True)
        assert opened.execute("SELECT count(*) FROM items").fetchone()[0] == 300
        assert schema_version(opened) == done.schema_version
        opened.conn.close()
    final = demo_catalog.execute("SELECT count(*) FROM labels").fetchone()[0]
    assert 20 <= counts[0] <= counts[1] <= counts[2] <= final  # each a state of the catalog at its moment


def test_a_backup_is_refused_where_it_would_harm_and_replaces_nothing_when_it_fails(demo_catalog, db_path, tmp_path):
    with pytest.raises(CatalogError, match="is the catalog itself"):
        backup_catalog(db_path, db_path.with_name(db_path.name + "-wal"))
    dest = tmp_path / "backups" / "nightly.db"
    first = backup_catalog(db_path, dest)
    with pytest.raises(CatalogError, match="exists"):
        backup_catalog(db_path, dest)
    q, c = (i for (i,) in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 2"))
    add_label(demo_catalog, Query.item(q), c, "color_hist", 1, True, "ana")
    before = dest.read_bytes()

    def fails(path):
        raise OSError(28, "No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backup_module, "_flush", fails)
        with pytest.raises(CatalogError, match="No space left"):
            backup_catalog(db_path, dest, force=True)
    assert dest.read_bytes() == before and [p.name for p in dest.parent.iterdir()] == ["nightly.db"]  # no leftovers
    assert sqlite3.connect(dest).execute("SELECT count(*) FROM labels").fetchone() == (0,)
    assert backup_catalog(db_path, dest, force=True).schema_version == first.schema_version  # once it can be
    assert sqlite3.connect(dest).execute("SELECT count(*) FROM labels").fetchone() == (1,)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE notes (x)")
    with pytest.raises(CatalogError, match="belongs to another application"):
        backup_catalog(other, tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()


def test_the_backup_command_names_backups_by_time_and_keeps_the_newest(demo_catalog, db_path, tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "demo-notes.db").write_text("not a backup of ours")  # never pruned: not a timestamped name
    made = []
    for stamp in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z"):
        made.append(folder / f"catalog-{stamp}.db")
        made[-1].write_bytes(b"")
    done = run_here("backup", str(folder), "--keep", "2", "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"backed up to {folder}/catalog-2") and "integrity ok" in done.stdout
    new = done.stdout.split()[3]
    assert sorted(p.name for p in folder.iterdir()) == ["catalog-20260103T000000Z.db", Path(new).name, "demo-notes.db"]
    assert "removed 2 older backup(s)" in done.stdout
    assert open_catalog(new, read_only=True).execute("SELECT count(*) FROM items").fetchone() == (300,)
    line = one_line(run_here("backup", new, "--db", str(db_path)))
    assert "exists; give another name, a folder, or --force" in line
