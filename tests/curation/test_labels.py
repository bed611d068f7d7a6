"""Labels: immediate writes, history, concurrent labellers, CSV exchange with validation."""

from __future__ import annotations

import csv
import multiprocessing
import sqlite3
import time

import pytest

from core.catalog.db import open_catalog
from core.curation.labels import (
    LabelCounts,
    LabelError,
    Query,
    add_label,
    current_grades,
    current_labels,
    export_labels,
    history,
    import_labels,
    label_counts,
    next_query,
)

from helpers import run_here


def ids(db, n: int) -> list[str]:
    return [r[0] for r in db.execute("SELECT id FROM items ORDER BY id LIMIT ?", (n,))]


def test_relabelling_keeps_latest_and_history(demo_catalog):
    q, a, b = ids(demo_catalog, 3)
    add_label(demo_catalog, Query.item(q), a, "efficientnet_lite0", 1, True, "ana")
    add_label(demo_catalog, Query.item(q), b, "efficientnet_lite0", 2, False, "ana")
    time.sleep(0.002)
    add_label(demo_catalog, Query.item(q), a, "color_hist", 4, False, "ben", note="wrong sleeve")
    assert current_labels(demo_catalog, Query.item(q)) == {a: False, b: False}
    past = history(demo_catalog, Query.item(q), a)
    assert [(h["labeler"], h["relevant"]) for h in past] == [("ana", 1), ("ben", 0)]
    assert past[-1]["note"] == "wrong sleeve"
    assert label_counts(demo_catalog) == LabelCounts(queries=1, labels=2, relevant=0)


def test_labels_are_validated(demo_catalog):
    q, a = ids(demo_catalog, 2)
    with pytest.raises(LabelError, match="labeler"):
        add_label(demo_catalog, Query.item(q), a, "m", 1, True, "  ")
    with pytest.raises(LabelError, match="no catalog item"):
        add_label(demo_catalog, Query.item(q), "ghost", "m", 1, True, "ana")
    with pytest.raises(LabelError, match="no catalog item"):
        add_label(demo_catalog, Query.item("ghost"), a, "m", 1, True, "ana")
    add_label(demo_catalog, Query.upload("ab" * 32), a, "m", 1, True, "ana")  # uploads need no item
    assert label_counts(demo_catalog).labels == 1


def _label_many(db_path: str, labeler: str, pairs: list[tuple[str, str]]) -> None:
    db = open_catalog(db_path)
    for n, (q, c) in enumerate(pairs):
        add_label(db, Query.item(q), c, "efficientnet_lite0", n % 10 + 1, n % 2 == 0, labeler)


def test_two_processes_labelling_at_once_lose_nothing(demo_catalog, db_path):
    items = ids(demo_catalog, 41)
    pairs = [(items[0], c) for c in items[1:]]
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_label_many, args=(str(db_path), name, pairs)) for name in ("ana", "ben")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert demo_catalog.execute("SELECT count(*) FROM labels").fetchone()[0] == 80
    assert len(current_labels(demo_catalog, Query.item(items[0]))) == 40


def test_the_same_verdict_twice_is_stored_once_and_a_change_of_mind_is_kept(demo_catalog):
    q, a = ids(demo_catalog, 2)
    first = add_label(demo_catalog, Query.item(q), a, "efficientnet_lite0", 1, False, "ana", grade="close")
    again = add_label(demo_catalog, Query.item(q), a, "efficientnet_lite0", 1, False, "ana", grade="close")
    assert again == first and len(history(demo_catalog, Query.item(q), a)) == 1  # a double click: one verdict
    add_label(demo_catalog, Query.item(q), a, "color_hist", 3, False, "ana", grade="close")  # seen in another list
    add_label(demo_catalog, Query.item(q), a, "color_hist", 3, True, "ben", grade="good")
    back = add_label(
        demo_catalog, Query.item(q), a, "color_hist", 3, False, "ana", grade="close"
    )  # ana again, after ben
    assert [(h["labeler"], h["method"], h["grade"]) for h in history(demo_catalog, Query.item(q), a)] == [
        ("ana", "efficientnet_lite0", "close"),
        ("ana", "color_hist", "close"),
        ("ben", "color_hist", "good"),
        ("ana", "color_hist", "close"),
    ]
    assert history(demo_catalog, Query.item(q), a)[-1]["id"] == back
    assert current_grades(demo_catalog, Query.item(q)) == {a: "close"}  # her repeat counts again: it is the latest


def test_csv_round_trip_merges_idempotently_and_reports_bad_rows(demo_catalog, tmp_path):
    q, a, b = ids(demo_catalog, 3)
    add_label(demo_catalog, Query.item(q), a, "efficientnet_lite0", 1, True, "ana", note='said "yes", twice')
    add_label(demo_catalog, Query.item(q), b, "efficientnet_lite0", 2, False, "ana")
    out = tmp_path / "labels.csv"
    assert export_labels(demo_catalog, out) == 2
    assert import_labels(demo_catalog, out).items == 0  # already there: nothing duplicated
    rows = list(csv.DictReader(open(out, newline="", encoding="utf-8")))
    rows.append({**rows[0], "labeler": "cy", "created_at": ""})  # a new judgement
    rows.append({**rows[0], "candidate_id": "ghost"})
    rows.append({**rows[0], "relevant": "maybe"})
    rows.append({**rows[0], "rank": "first"})
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = import_labels(demo_catalog, out)
    assert report.rows == 6 and report.items == 1 and report.duplicates == 2
    assert [p.where for p in report.problems] == ["row 5", "row 6", "row 7"]
    assert "ghost" in report.problems[0].reason and "yes/no" in report.problems[1].reason
    assert history(demo_catalog, Query.item(q), a)[0]["note"] == 'said "yes", twice'
    with open(out, "w", newline="", encoding="utf-8") as handle:  # a file with no usable row at all
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[3:5])
    done = run_here("labels", "import", str(out), "--db", str(demo_catalog.path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and not done.stdout, done
    assert done.stderr.startswith("error: no label imported from labels.csv: row 2:") and "(and 1 more)" in done.stderr


def test_next_query_prefers_unlabelled_and_honours_category(demo_catalog):
    q = next_query(demo_catalog, "unlabelled", seed=1)
    candidate = [i for i in ids(demo_catalog, 5) if i != q][0]
    add_label(demo_catalog, Query.item(q), candidate, "m", 1, True, "ana")
    seen = {next_query(demo_catalog, "unlabelled", seed=s) for s in range(30)}
    assert q not in seen
    picked = next_query(demo_catalog, "category", category="watches", seed=3)
    assert demo_catalog["items"].get(picked)["category"] == "Watches"


def test_graded_verdicts_are_stored_exported_and_imported_beside_yes_no(demo_catalog, tmp_path):
    q, a, b, c = ids(demo_catalog, 4)
    add_label(demo_catalog, Query.item(q), a, "color_hist", 1, True, "ana")  # yes/no: grade NULL, reads as good
    add_label(demo_catalog, Query.item(q), b, "color_hist", 2, True, "ana", grade="close")  # relevant follows the grade
    add_label(demo_catalog, Query.item(q), c, "color_hist", 3, False, "ana", grade="wrong")
    stored = demo_catalog.execute("SELECT candidate_id, relevant, grade FROM labels ORDER BY id").fetchall()
    assert stored == [(a, 1, None), (b, 0, "close"), (c, 0, "wrong")]
    assert current_grades(demo_catalog, Query.item(q)) == {a: "good", b: "close", c: "wrong"}
    assert current_labels(demo_catalog, Query.item(q)) == {a: True, b: False, c: False}  # binary readers
    with pytest.raises(LabelError, match="good/close/wrong"):
        add_label(demo_catalog, Query.item(q), a, "color_hist", 1, True, "ana", grade="great")
    with pytest.raises(sqlite3.IntegrityError):  # the schema refuses a close verdict marked relevant
        demo_catalog.execute(
            "INSERT INTO labels (query_kind, query_key, candidate_id, method, rank, relevant, labeler, grade) "
            "VALUES ('item', ?, ?, 'color_hist', 1, 1, 'x', 'close')",
            (q, a),
        )

    out = tmp_path / "labels.csv"
    assert export_labels(demo_catalog, out) == 3
    rows = list(csv.DictReader(open(out, newline="", encoding="utf-8")))
    assert [r["grade"] for r in rows] == ["", "close", "wrong"]
    with demo_catalog.conn:
        demo_catalog.conn.execute("DELETE FROM labels")  # as a catalog that has never seen them
    fresh = demo_catalog
    assert import_labels(fresh, out).items == 3
    assert current_grades(fresh, Query.item(q)) == {a: "good", b: "close", c: "wrong"}

    graded = tmp_path / "graded.csv"  # a grade column alone, a grade beside relevant, and conflicts
    with open(graded, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query_key", "candidate_id", "method", "labeler", "relevant", "grade"])
        writer.writerows(
            [
                [q, a, "color_hist", "bo", "", "close"],
                [q, b, "color_hist", "bo", "yes", "Good"],
                [q, c, "color_hist", "bo", "yes", "close"],  # close is not relevant
                [q, c, "color_hist", "bo", "", ""],
                [q, c, "color_hist", "bo", "", "meh"],
            ]
        )
    report = import_labels(fresh, graded)
    assert report.items == 2 and [p.where for p in report.problems] == ["row 4", "row 5", "row 6"]
    assert "disagrees" in report.problems[0].reason and "grade" in report.problems[1].reason
    assert "good/close/wrong" in report.problems[2].reason
    assert current_grades(fresh, Query.item(q)) == {a: "close", b: "good", c: "wrong"}
    assert import_labels(fresh, graded).items == 0  # idempotent, grades included


def test_an_old_labels_file_without_grades_still_imports(demo_catalog, tmp_path):
    q, a = ids(demo_catalog, 2)
    old = tmp_path / "old.csv"
    with open(old, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query_kind", "query_key", "candidate_id", "method", "rank", "relevant", "labeler"])
        writer.writerow(["item", q, a, "color_hist", "1", "no", "ana"])
    assert import_labels(demo_catalog, old).items == 1
    assert current_grades(demo_catalog, Query.item(q)) == {a: "wrong"}


def test_yes_no_labels_of_an_older_catalog_read_as_good_and_wrong_after_the_upgrade(db_path, tmp_path, monkeypatch):
    from core.catalog import db as catalog_db

    before = tmp_path / "migrations"  # a catalog made before graded verdicts (migration 9)
    before.mkdir()
    for version, path in catalog_db.migrations():
        if version < 9:
            (before / path.name).write_text(path.read_text())
    monkeypatch.setattr(catalog_db, "MIGRATIONS_DIR", before)
    old = open_catalog(db_path)
    old.conn.executemany("INSERT INTO items (id, source) VALUES (?, 'csv')", [("q",), ("a",), ("b",)])
    old.conn.commit()
    old.conn.executemany(  # as that version's add_label wrote them
        "INSERT INTO labels (query_kind, query_key, candidate_id, method, rank, relevant, labeler) "
        "VALUES ('item', 'q', ?, 'm', ?, ?, 'ana')",
        [("a", 1, 1), ("b", 2, 0)],
    )
    old.conn.commit()
    old.conn.close()
    monkeypatch.undo()
    db = open_catalog(db_path)
    assert db.execute("SELECT candidate_id, relevant, grade FROM current_labels ORDER BY candidate_id").fetchall() == [
        ("a", 1, None),
        ("b", 0, None),
    ]
    assert current_grades(db, Query.item("q")) == {"a": "good", "b": "wrong"}
    assert db.execute("SELECT count(*) FROM snapshots").fetchone() == (0,)
    db.conn.close()


def test_label_notes_are_neutralised_and_round_trip(demo_catalog, imported_demo_path, tmp_path):
    import shutil

    from helpers import FORMULAS, read_rows

    q, *candidates = [r[0] for r in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 7")]
    for candidate, note in zip(candidates, FORMULAS):
        add_label(demo_catalog, Query.item(q), candidate, "color_hist", 1, True, "-ana", note=note)
    out = tmp_path / "labels.csv"
    export_labels(demo_catalog, out)
    raw = read_rows(out, "utf-8")
    assert [r["note"] for r in raw] == ["'=1+1", "'+", "'-", "'@SUM(1)", "'\tx", "''=already quoted"]
    assert {r["labeler"] for r in raw} == {"'-ana"} and {r["rank"] for r in raw} == {"1"}
    shutil.copy(imported_demo_path, tmp_path / "other.db")  # another catalog of the same items
    fresh = open_catalog(tmp_path / "other.db")
    assert import_labels(fresh, out).items == 6
    notes = {r[0]: r[1] for r in fresh.execute("SELECT note, labeler FROM labels")}
    assert sorted(notes) == sorted(FORMULAS) and set(notes.values()) == {"-ana"}


def write_labels(path, rows: list[dict]):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["query_key", "candidate_id", "method", "relevant", "labeler", "note", "created_at"]
        )
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_change_of_mind_in_a_file_ends_current(demo_catalog, tmp_path):
    q, a, b = [r[0] for r in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 3")]
    stamp = "2024-05-01T09:30:00.000Z"
    rows = [
        dict(query_key=q, candidate_id=a, method="color_hist", relevant="no", labeler="ana", created_at=stamp),
        dict(query_key=q, candidate_id=a, method="color_hist", relevant="yes", labeler="ana", created_at=stamp),
        dict(query_key=q, candidate_id=b, method="color_hist", relevant="yes", labeler="ana"),
        dict(query_key=q, candidate_id=b, method="color_hist", relevant="no", labeler="ana"),
    ]
    path = write_labels(tmp_path / "labels.csv", rows)
    report = import_labels(demo_catalog, path)
    assert (report.items, report.duplicates, report.problems) == (4, 0, [])
    assert current_labels(demo_catalog, Query.item(q)) == {a: True, b: False}
    again = import_labels(demo_catalog, path)  # idempotent
    assert (again.items, again.duplicates) == (0, 4)
    assert len(history(demo_catalog, Query.item(q), a)) == 2


def test_times_are_validated_and_normalised(demo_catalog, tmp_path):
    q, a, b, c = [r[0] for r in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 4")]
    rows = [
        dict(query_key=q, candidate_id=a, method="color_hist", relevant="yes", labeler="ana", created_at="zzz"),
        dict(query_key=q, candidate_id=b, method="color_hist", relevant="yes", labeler="ana", created_at="9999-01-01"),
        dict(
            query_key=q,
            candidate_id=c,
            method="color_hist",
            relevant="yes",
            labeler="ana",
            created_at="2024-05-01T11:30:00+02:00",
        ),
    ]
    report = import_labels(demo_catalog, write_labels(tmp_path / "l.csv", rows))
    assert report.items == 1
    assert [str(p) for p in report.problems] == [
        "row 2: created_at 'zzz' is not an ISO-8601 time",
        "row 3: created_at '9999-01-01' is in the future",
    ]
    assert demo_catalog.execute("SELECT created_at FROM labels").fetchone()[0] == "2024-05-01T09:30:00.000Z"
    add_label(demo_catalog, Query.item(q), c, "m", 1, False, "ana")  # a click now outranks the import
    assert current_labels(demo_catalog, Query.item(q)) == {c: False}


def test_many_labels_in_the_same_millisecond_are_all_kept(demo_catalog):
    q, a = [r[0] for r in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 2")]
    for n in range(600):
        add_label(demo_catalog, Query.item(q), a, "m", 1, n % 2 == 0, "ana")
    assert demo_catalog.execute("SELECT count(*) FROM labels").fetchone()[0] == 600
    assert current_labels(demo_catalog, Query.item(q)) == {a: False}  # the 600th click


def test_migration_sinks_unreadable_times(tmp_path, monkeypatch):
    import shutil

    from core.catalog import db as catalog_db

    old_dir = tmp_path / "migrations"
    old_dir.mkdir()
    for _, path in catalog_db.migrations()[:3]:
        shutil.copy(path, old_dir)
    monkeypatch.setattr(catalog_db, "MIGRATIONS_DIR", old_dir)
    old = open_catalog(tmp_path / "old.db")
    old.execute("INSERT INTO items (id, source) VALUES ('q', 'csv'), ('a', 'csv')")
    old.execute(
        "INSERT INTO labels (query_kind, query_key, candidate_id, method, rank, relevant, labeler, "
        "created_at) VALUES ('item', 'q', 'a', 'm', 1, 1, 'ana', 'zzz')"
    )
    old.conn.commit()
    old.conn.close()
    monkeypatch.undo()
    db = open_catalog(tmp_path / "old.db")
    assert db.execute("SELECT created_at FROM labels").fetchone()[0] == "1970-01-01T00:00:00.000Z"
    add_label(db, Query.item("q"), "a", "m", 1, False, "ana")
    assert current_labels(db, Query.item("q")) == {"a": False}


def test_huge_ranks_and_notes_are_reported_not_raised(demo_catalog, tmp_path):
    a, b = [r[0] for r in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 2")]
    path = tmp_path / "labels.csv"
    path.write_text(
        "query_key,candidate_id,method,rank,relevant,labeler,note\n"
        f"{a},{b},color_hist,100000000000000000000,yes,ana,\n"
        f"{a},{b},color_hist,1,yes,ana,{'x' * 200_000}\n"
        f"{a},{b},color_hist,2,no,ana,fine\n",
        encoding="utf-8",
    )
    report = import_labels(demo_catalog, path)
    assert report.items == 1
    assert [p.where for p in report.problems] == ["row 2", "row 3"]
    assert "between 1 and" in report.problems[0].reason and "longer than" in report.problems[1].reason
    with pytest.raises(ValueError, match="between 1 and"):
        add_label(demo_catalog, Query.item(a), b, "m", 10**20, True, "ana")


def test_a_cell_over_the_reader_limit_rejects_the_file_in_one_line(demo_catalog, tmp_path):
    a, b = [r[0] for r in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 2")]
    path = tmp_path / "labels.csv"
    path.write_text(
        "query_key,candidate_id,method,rank,relevant,labeler,note\n"
        f"{a},{b},color_hist,1,yes,ana,ok\n{a},{b},color_hist,1,yes,ana,{'y' * 2_000_000}\n",
        encoding="utf-8",
    )
    report = import_labels(demo_catalog, path)
    assert report.items == 0 and len(report.problems) == 1
    assert "nothing was imported" in report.problems[0].reason


def test_a_labels_file_with_a_column_twice_is_refused(demo_catalog, tmp_path):
    from core.curation.labels import import_labels

    path = tmp_path / "labels.csv"
    path.write_text(
        "query_kind,query_key,candidate_id,method,rank,relevant,labeler,relevant\n"
        "item,10129,10130,color_hist,1,yes,ann,no\n"
    )
    report = import_labels(demo_catalog, path)
    assert report.items == 0 and "column 'relevant' appears twice" in report.problems[0].reason


def test_an_import_refuses_unknown_methods_and_upload_keys_that_are_no_photo_hash(demo_catalog, tmp_path):
    """Labels of a method this catalog does not have, or of an upload whose key is no SHA-256, are reported
    by row and never stored, so `precision` never lists a method that does not exist."""
    from core.curation.metrics import precision_from_labels

    q, a = ids(demo_catalog, 2)
    photo = "AB" * 32
    path = tmp_path / "labels.csv"
    path.write_text(
        "query_kind,query_key,candidate_id,method,rank,relevant,labeler\n"
        f"item,{q},{a},nonexistent_method,1,yes,ana\n"
        f"item,{q},{a},,1,yes,ana\n"
        f"upload,not-a-hash,{a},color_hist,1,yes,ana\n"
        f"upload,../../etc/passwd,{a},color_hist,1,yes,ana\n"
        f"upload,{photo},{a},color_hist,1,yes,ana\n"
        f"item,{q},{a},color_hist,1,no,ana\n",
        encoding="utf-8",
    )
    report = import_labels(demo_catalog, path)
    assert report.items == 2 and [p.where for p in report.problems] == ["row 2", "row 3", "row 4", "row 5"]
    assert "nonexistent_method" in report.problems[0].reason and "method is empty" in report.problems[1].reason
    assert all("SHA-256" in p.reason for p in report.problems[2:])
    stored = demo_catalog.execute("SELECT query_kind, query_key, method FROM labels ORDER BY id").fetchall()
    assert stored == [("upload", photo.lower(), "color_hist"), ("item", q, "color_hist")]
    assert {f.method for f in precision_from_labels(demo_catalog)} == {"color_hist"}
