"""Catalog database: migrations applied on open, upgrades, refusal of newer schemas, concurrency."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading

import numpy as np
import pytest

from core.catalog import db as catalog_db
from core.catalog import vectors
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


def test_gone_ids_are_read_from_an_index_alone(db_path):
    """Every search reads the gone items' ids: from a covering index, not a row look-up per gone item."""
    db = open_catalog(db_path)
    with db.conn:
        db.conn.executemany("INSERT INTO items (id, source, gone_at) VALUES (?, 'csv', ?)", [("a", None), ("b", "x")])
    plan = " ".join(r[-1] for r in db.execute(f"EXPLAIN QUERY PLAN {vectors.GONE_SQL}"))
    assert "COVERING INDEX items_gone" in plan
    assert vectors.gone_ids(db) == {"b"}


def test_the_gone_counter_moves_only_when_an_item_goes_or_comes_back(db_path):
    """A process re-reads the gone ids only when this counter has moved: every way the set changes moves it."""
    db = open_catalog(db_path)
    moves = []

    def after(sql: str, *params) -> None:
        before = vectors.gone_generation(db)
        with db.conn:
            db.conn.execute(sql, params)
        moves.append(vectors.gone_generation(db) - before)

    after("INSERT INTO items (id, source) VALUES ('a', 'csv')")
    after("INSERT INTO items (id, source, gone_at) VALUES ('b', 'csv', 'x')")  # added as gone
    after("UPDATE items SET title = 'new' WHERE id = 'a'")
    after("UPDATE items SET gone_at = 'y' WHERE id = 'a'")  # goes
    after("UPDATE items SET gone_at = 'z' WHERE id = 'a'")  # still gone, another time
    after("UPDATE items SET gone_at = NULL WHERE id = 'a'")  # back
    after("DELETE FROM items WHERE id = 'b'")  # a gone item deleted
    after("DELETE FROM items WHERE id = 'a'")  # a live one
    assert moves == [0, 1, 0, 1, 0, 1, 1, 0]


def test_reads_of_a_few_items_leave_gone_ones_out(db_path):
    db = open_catalog(db_path)
    with db.conn:
        db.conn.executemany("INSERT INTO items (id, source, gone_at) VALUES (?, 'csv', ?)", [("a", None), ("b", "x")])
    vectors.store(db, "m", "1", [("a", np.ones(4, np.float32), "s"), ("b", np.ones(4, np.float32), "s")])
    assert vectors.vectors_of(db, "m", ["a", "b"])[0] == ["a"]
    assert vectors.get_vector(db, "m", "a") is not None and vectors.get_vector(db, "m", "b") is None
    assert vectors.load_matrix(db, "m")[0] == ["a"] and vectors.load_matrix(db, "m", live=False)[0] == ["a", "b"]


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


def test_catalogs_with_the_same_stem_share_no_derived_files(tmp_path):
    """shop.db and shop.sqlite (and shop) in one folder: each its own indices, trained models, exports."""
    opened = [open_catalog(tmp_path / name) for name in ("shop.db", "shop.sqlite", "shop")]
    folders = [db.files_dir for db in opened]
    assert folders[0] == tmp_path / "shop" and len(set(folders)) == 3
    assert len({db.index_dir for db in opened}) == len({db.trained_dir for db in opened}) == 3
    for db in opened:
        db.conn.close()


def test_a_catalog_takes_over_the_folder_an_older_version_gave_it(tmp_path):
    """Alone with its stem, shop.sqlite's old shop/ becomes its own (read in place when read-only); beside
    shop.db, shop/ stays shop.db's and shop.sqlite takes only the autoencoder checkpoint its vectors came from."""
    from core.methods.weights import autoencoder_checkpoint, checkpoint_version

    open_catalog(tmp_path / "shop.sqlite").conn.close()
    new = tmp_path / "shop.sqlite-files"
    new.rename(tmp_path / "shop") if new.exists() else (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "trained").mkdir()
    (tmp_path / "shop" / "trained" / "kept.bin").write_bytes(b"trained")
    read = open_catalog(tmp_path / "shop.sqlite", read_only=True)
    assert read.trained_dir == tmp_path / "shop" / "trained" and not new.exists()
    read.conn.close()
    db = open_catalog(tmp_path / "shop.sqlite")
    assert (db.trained_dir / "kept.bin").read_bytes() == b"trained" and db.files_dir == new
    assert not (tmp_path / "shop").exists()
    db.conn.close()

    checkpoint = tmp_path / "shop" / "trained" / "autoencoder" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights of shop.lite's autoencoder")
    open_catalog(tmp_path / "shop.db").conn.close()
    for name, version in (("shop.lite", checkpoint_version(checkpoint.read_bytes())), ("shop.other", "1-another")):
        sibling = open_catalog(tmp_path / name)
        sibling.execute("INSERT INTO items (id, source) VALUES ('a', 'csv')")
        sibling.execute(
            "INSERT INTO embeddings (item_id, method, version, dim, vector, source_hash) "
            "VALUES ('a', 'autoencoder', ?, 1, x'00', 'h')",
            [version],
        )
        sibling.conn.commit()
        assert sibling.files_dir == tmp_path / f"{name}-files"
        found = autoencoder_checkpoint(sibling)
        assert found == sibling.trained_dir / "autoencoder" / "checkpoint.pt"
        assert found.exists() == (name == "shop.lite")
        sibling.conn.close()
    assert checkpoint.exists() and (tmp_path / "shop" / "trained").is_dir()
    (tmp_path / "pictures").mkdir()  # a user's own folder that happens to share a catalog's stem
    (tmp_path / "pictures" / "a.jpg").write_bytes(b"mine")
    pictures = open_catalog(tmp_path / "pictures.sqlite")
    assert pictures.files_dir == tmp_path / "pictures.sqlite-files" and (tmp_path / "pictures" / "a.jpg").exists()
    pictures.conn.close()


def test_a_folder_as_catalog_is_one_line(tmp_path):
    from helpers import run_cli

    done = run_cli("stats", "--db", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "is a folder" in done.stderr
    assert "Traceback" not in done.stderr


def _corrupted_catalog(tmp_path) -> tuple:
    """A small embedded catalog, closed and checkpointed, with garbage written over the first page of every
    table and index but the schema's (so it opens, and fails when its data is read)."""
    from core.catalog.importers import import_csv
    from core.engines.embed import embed_catalog

    from helpers import small_styles

    csv_path, folder = small_styles(tmp_path, n=40)
    db = open_catalog(tmp_path / "c.db")
    import_csv(db, csv_path, folder, progress=False)
    embed_catalog(db, "color_hist", progress=False)
    item = db.execute("SELECT min(id) FROM items").fetchone()[0]
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    roots = [
        r[0]
        for r in db.execute("SELECT rootpage FROM sqlite_master WHERE rootpage > 1 AND tbl_name != 'schema_migrations'")
    ]
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    with open(db.path, "r+b") as handle:
        for page in roots:
            handle.seek((page - 1) * page_size)
            handle.write(bytes(range(256)) * (page_size // 256))
    return db.path, item


@pytest.mark.parametrize("command", [["stats"], ["search", "--method", "color_hist", "--item", "ITEM"]])
def test_a_damaged_catalog_is_one_line_saying_how_to_recover(tmp_path, command):
    from helpers import run_cli

    path, item = _corrupted_catalog(tmp_path)
    done = run_cli(*[item if a == "ITEM" else a for a in command], "--db", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "is damaged" in done.stderr and ".recover" in done.stderr, done.stderr


def _foreign_sqlite(path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE items (sku TEXT PRIMARY KEY, qty INTEGER)")
    conn.execute("INSERT INTO items VALUES ('a', 1)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("command", [["stats"], ["stats", "--json"], ["methods"]])
def test_read_commands_leave_a_foreign_sqlite_file_untouched(tmp_path, command):
    from helpers import run_cli, sha

    foreign = tmp_path / "shop.db"
    _foreign_sqlite(foreign)
    before = sha(foreign)
    done = run_cli(*command, "--db", str(foreign))
    assert done.returncode == 2 and "another application" in done.stderr and "Traceback" not in done.stderr
    assert sha(foreign) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.db"]  # no -wal / -shm left behind


def test_import_refuses_a_foreign_sqlite_file(tmp_path):
    from helpers import DEMO, run_cli, sha

    foreign = tmp_path / "shop.db"
    _foreign_sqlite(foreign)
    before = sha(foreign)
    done = run_cli("import-csv", str(DEMO / "styles.csv"), "--images", str(DEMO / "images"), "--db", str(foreign))
    assert done.returncode == 2 and "another application" in done.stderr
    assert sha(foreign) == before


def test_an_empty_file_becomes_a_catalog(tmp_path):
    empty = tmp_path / "new.db"
    empty.touch()
    assert open_catalog(empty).execute("SELECT count(*) FROM items").fetchone()[0] == 0


def test_read_only_open_reads_without_writing(embedded_demo):
    from helpers import sha

    path = embedded_demo.path
    embedded_demo.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    embedded_demo.conn.close()
    before = sha(path)
    db = open_catalog(path, read_only=True)
    assert db.execute("SELECT count(*) FROM items").fetchone()[0] > 0
    with pytest.raises(Exception, match="readonly"):
        db.execute("DELETE FROM items")
    db.conn.close()
    assert sha(path) == before


def test_two_catalogs_in_one_folder_share_no_derived_files(embedded_demo, tmp_path):
    from core.catalog.importers import import_csv
    from core.catalog.thumbnails import catalog_thumbnail
    from core.engines.autoencoder_training import train
    from core.engines.embed import embed_catalog
    from core.methods import list_methods
    from core.search.index import problem
    from core.search.space import open_space

    from helpers import small_styles

    other = open_catalog(tmp_path / "other.db")
    csv_path, folder = small_styles(tmp_path, 8)
    import_csv(other, csv_path, folder, progress=False)
    embed_catalog(other, "color_hist", progress=False)
    train(other, epochs=1, batch_size=8, progress=False)
    ready = {m.name: m.available for m in list_methods(embedded_demo)}
    assert ready["autoencoder"] is False and {m.name: m.available for m in list_methods(other)}["autoencoder"]
    open_space(embedded_demo, "color_hist").build_index(progress=False)
    open_space(other, "color_hist").build_index(progress=False)
    assert problem(embedded_demo, "color_hist") is None and problem(other, "color_hist") is None
    path = other.execute("SELECT path FROM images LIMIT 1").fetchone()[0]
    assert catalog_thumbnail(other, path).is_relative_to(tmp_path / "other")
    owned = {other.index_dir, other.thumbnails_dir, other.exports_dir, other.trained_dir}
    assert all(p.is_relative_to(tmp_path / "other") for p in owned)
    assert not any(p.is_relative_to(tmp_path / "other") for p in (embedded_demo.index_dir, embedded_demo.trained_dir))


def test_an_autoencoder_of_the_old_shared_layout_goes_to_the_catalog_that_made_its_vectors(tmp_path):
    import shutil

    from core.catalog.importers import import_csv
    from core.engines.autoencoder_training import train
    from core.engines.embed import embed_catalog
    from core.methods.weights import autoencoder_checkpoint

    from helpers import small_styles

    first, second = open_catalog(tmp_path / "a.db"), open_catalog(tmp_path / "b.db")
    csv_path, folder = small_styles(tmp_path, 8)
    for db in (first, second):
        import_csv(db, csv_path, folder, progress=False)
    train(first, epochs=1, batch_size=8, progress=False)
    embed_catalog(first, "autoencoder", progress=False)
    legacy = first.models_dir / "autoencoder" / "checkpoint.pt"  # where older versions kept it
    legacy.parent.mkdir(parents=True, exist_ok=True)  # the OpenVINO conversion may be cached beside it
    shutil.move(autoencoder_checkpoint(first), legacy)
    assert not autoencoder_checkpoint(second).exists()  # not its vectors: never taken
    assert autoencoder_checkpoint(first).read_bytes() == legacy.read_bytes()
    assert embed_catalog(first, "autoencoder", progress=False).pending == 0  # same version: nothing stale


@pytest.fixture
def read_only_copy(embedded_demo_path, tmp_path):
    """The demo catalog in a folder this process cannot write: a read-only bind mount (as root, where
    permissions do not hold), else a folder and file without write permission."""
    import os
    import shutil
    import subprocess

    folder, mount = tmp_path / "shop", tmp_path / "mounted"
    folder.mkdir()
    shutil.copy(embedded_demo_path, folder / "shop.db")
    if os.geteuid() != 0:
        (folder / "shop.db").chmod(0o444)
        folder.chmod(0o555)
        yield folder / "shop.db"
        folder.chmod(0o755)
        return
    mount.mkdir()
    if subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(mount)], capture_output=True).returncode:
        pytest.skip("cannot make a read-only mount here (root without the mount capability)")
    try:
        yield mount / "shop.db"
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)  # lazy: a cached connection may hold it


def test_a_read_only_catalog_is_read_by_reading_commands_and_named_by_writing_ones(read_only_copy):
    from helpers import one_line, run_here

    db = str(read_only_copy)
    assert "items" in run_here("stats", "--db", db).stdout
    for reading in (
        ("search", "--item", "10129", "--method", "color_hist"),
        ("methods",),
        ("labels", "export", "/dev/null"),
    ):
        done = run_here(*reading, "--db", db)
        assert done.returncode == 0 and "damaged" not in done.stderr, (reading, done.stderr)
    for writing in (("embed", "--method", "color_hist"), ("index", "--method", "color_hist"), ("demo",)):
        line = one_line(run_here(*writing, "--db", db))
        assert f"the catalog {read_only_copy} is read-only" in line and "damaged" not in line, writing
    opened = open_catalog(read_only_copy)
    assert opened.read_only and opened.execute("SELECT count(*) FROM items").fetchone()[0] == 300
    opened.conn.close()
    with pytest.raises(CatalogError, match="is read-only"):
        open_catalog(read_only_copy, needs_write=True)


def test_writing_holds_the_lock_from_its_start_and_waits_for_another_writer(db_path):
    from core.catalog.db import writing

    db, other = open_catalog(db_path), open_catalog(db_path)
    for conn in (db.conn, other.conn):  # SQLite answers busy at once: writing itself must wait
        conn.execute("PRAGMA busy_timeout = 0")
    other.conn.execute("BEGIN IMMEDIATE")
    other.conn.execute("INSERT INTO items (id, source) VALUES ('a', 'csv')")
    threading.Timer(0.5, other.conn.commit).start()
    with writing(db) as conn:  # waits for the commit, then reads what it will build on
        seen = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        with pytest.raises(sqlite3.OperationalError, match="locked"):  # the lock is held from the start
            other.conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO items (id, source) VALUES ('b', 'csv')")
    assert seen == 1 and other.execute("SELECT count(*) FROM items").fetchone()[0] == 2
    other.conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # and gives up after wait_s
        with writing(db, wait_s=0.2):
            pass
    other.conn.rollback()
    with pytest.raises(ValueError), writing(db) as conn:  # an exception rolls back
        conn.execute("INSERT INTO items (id, source) VALUES ('c', 'csv')")
        raise ValueError
    assert db.execute("SELECT group_concat(id) FROM items").fetchone()[0] == "a,b"
    db.conn.close()
    other.conn.close()


LABELLERS, OWN_PAIRS, SHARED_PAIRS = 5, 30, 10  # each labeller: own pairs (each sent twice) and shared ones


def _team_member(role: str, index: int, path: str, items: list[str], start, labelled, results) -> None:
    """One person of the team in a process of their own: a labeller, the curator or the embedder. Puts
    (role, index, what it saw or an error) in `results`."""
    from core.curation import decisions
    from core.curation.labels import Query, add_label
    from core.engines.embed import embed_catalog

    try:
        db = open_catalog(path)  # one connection for the whole session, as the app keeps one per session
        start.wait(60)
        if role == "labeller":
            name, grades = f"labeller {index}", ("good", "close", "wrong")
            own = items[10 + index * OWN_PAIRS : 10 + (index + 1) * OWN_PAIRS]
            for n, candidate in enumerate(own):
                for _ in range(2):  # a double click, or a rerun sending it again
                    add_label(
                        db, Query.item(items[0]), candidate, "color_hist", n % 10 + 1, False, name, grade=grades[n % 3]
                    )
            for n, candidate in enumerate(items[1 : 1 + SHARED_PAIRS]):  # everyone judges these too
                add_label(
                    db,
                    Query.item(items[1 + SHARED_PAIRS]),
                    candidate,
                    "color_hist",
                    n + 1,
                    False,
                    name,
                    grade=grades[index % 3],
                )
            labelled.wait(120)  # every labeller is done: each sees the others' verdicts on its next read
            seen = db.execute("SELECT count(*) FROM labels WHERE labeler != ?", (name,)).fetchone()[0]
            results.put((role, index, seen))
        elif role == "curator":
            for n, candidate in enumerate(items[200:230]):
                for _ in range(2):
                    decisions.pin(db, items[n], candidate, n % 5 + 1, "curator")
                if n % 3 == 0:
                    decisions.hide(db, candidate, "curator")
                    decisions.set_rule(db, "in_stock", "yes" if n % 2 == 0 else "off", "curator")
            decisions.undo(db, author="curator")
            results.put((role, index, len(decisions.history(db))))
        else:
            report = embed_catalog(db, "color_hist", batch_size=8, progress=False)
            results.put((role, index, report.embedded))
        db.conn.close()
    except BaseException as exc:  # reported to the test, which shows it
        results.put((role, index, f"{type(exc).__name__}: {exc}"))


def test_five_labellers_a_curator_and_an_embedding_at_once_lose_nothing(demo_catalog, db_path):
    items = [i for (i,) in demo_catalog.execute("SELECT id FROM items ORDER BY id")]
    ctx = multiprocessing.get_context("spawn")
    team = [("labeller", i) for i in range(LABELLERS)] + [("curator", 0), ("embedder", 0)]
    start, labelled, results = ctx.Barrier(len(team)), ctx.Barrier(LABELLERS), ctx.Queue()
    workers = [
        ctx.Process(target=_team_member, args=(role, i, str(db_path), items, start, labelled, results))
        for role, i in team
    ]
    for w in workers:
        w.start()
    reports = sorted(results.get(timeout=300) for _ in workers)
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0] * len(team)
    verdicts = LABELLERS * (OWN_PAIRS + SHARED_PAIRS)
    assert reports == [
        ("curator", 0, 30 + 10 + 10 + 1),  # 30 pins stored once each, 10 hides, 10 rule changes, the undo
        ("embedder", 0, 300),
        *[("labeller", i, verdicts - OWN_PAIRS - SHARED_PAIRS) for i in range(LABELLERS)],  # all the others'
    ], reports
    rows = demo_catalog.execute("SELECT labeler, query_key, candidate_id, count(*) FROM labels GROUP BY 1, 2, 3")
    assert [n for *_, n in rows] == [1] * verdicts  # every verdict exactly once: none lost, none doubled
    shared = demo_catalog.execute(  # each shared pair's counting verdict is the last one written
        "SELECT c.labeler = (SELECT l.labeler FROM labels l WHERE l.query_key = c.query_key "
        "AND l.candidate_id = c.candidate_id ORDER BY l.id DESC LIMIT 1) FROM current_labels c WHERE query_key = ?",
        (items[1 + SHARED_PAIRS],),
    ).fetchall()
    assert shared == [(1,)] * SHARED_PAIRS
    assert demo_catalog.execute("SELECT count(*) FROM embeddings WHERE method = 'color_hist'").fetchone()[0] == 300
