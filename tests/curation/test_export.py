"""Similar-item CSV export: rows, filters, only-relevant, atomic writes, spreadsheet-friendly."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.curation.export import COLUMNS, export_similar
from core.curation.labels import Query, add_label, export_labels
from core.files.output_path import header_bytes
from core.search.space import open_space

from helpers import FORMULAS, ROOT, run_cli, sha


def read(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def test_every_item_gets_its_top_k(embedded_demo, tmp_path):
    out = tmp_path / "similar.csv"
    assert export_similar(open_space(embedded_demo, "efficientnet_lite0"), 5, out, progress=False) == 1500
    rows = read(out)
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 1500
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets read it as UTF-8
    first = [r for r in rows if r["item_id"] == rows[0]["item_id"]]
    assert [int(r["rank"]) for r in first] == [1, 2, 3, 4, 5]
    assert all(r["neighbour_id"] != r["item_id"] for r in rows)
    assert first[0]["item_title"] and first[0]["neighbour_image_file"].endswith(".jpg")
    assert all(r["item_image_url"] == "" for r in rows)  # the demo has local photos, no URLs
    assert [p.name for p in tmp_path.iterdir() if "similar" in p.name] == ["similar.csv"]  # no temp file


def test_filters_and_only_relevant(embedded_demo, tmp_path):
    out = tmp_path / "f.csv"
    export_similar(
        open_space(embedded_demo, "efficientnet_lite0"), 3, out, filters={"category": ["watches"]}, progress=False
    )
    rows = read(out)
    categories = dict(embedded_demo.execute("SELECT id, category FROM items"))
    assert len(rows) == 12 * 3
    assert all(categories[r["item_id"]] == categories[r["neighbour_id"]] == "Watches" for r in rows)
    query, good, bad = rows[0]["item_id"], rows[0]["neighbour_id"], rows[1]["neighbour_id"]
    add_label(embedded_demo, Query.item(query), good, "efficientnet_lite0", 1, True, "ana")
    add_label(embedded_demo, Query.item(query), bad, "efficientnet_lite0", 2, False, "ana")
    export_similar(open_space(embedded_demo, "efficientnet_lite0"), 3, out, only_relevant=True, progress=False)
    assert [(r["item_id"], r["neighbour_id"]) for r in read(out)] == [(query, good)]


def test_interrupted_export_leaves_the_old_file(embedded_demo, tmp_path, monkeypatch):
    out = tmp_path / "exports" / "similar.csv"
    out.parent.mkdir()
    previous = header_bytes(COLUMNS, "utf-8-sig") + b"1,2,1,0.9,efficientnet_lite0,a,b,,\r\n"
    out.write_bytes(previous)  # an earlier export: ours, so it may be replaced

    def interrupted(*args, **kwargs):
        yield "x", []
        raise KeyboardInterrupt

    monkeypatch.setattr("core.curation.export.Curator.many", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_similar(open_space(embedded_demo, "efficientnet_lite0"), 5, out, progress=False)
    assert out.read_bytes() == previous
    assert [p.name for p in out.parent.iterdir()] == ["similar.csv"]  # no temp file left


def test_cli_export_and_precision_json(embedded_demo, tmp_path):
    db = str(embedded_demo.path)
    out = tmp_path / "cli.csv"

    def run(*a: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "core", *a, "--db", db], cwd=ROOT, capture_output=True, text=True, timeout=120
        )

    done = run(
        "export", "--method", "efficientnet_lite0", "-k", "2", "--out", str(out), "--filter", "gender=Women", "--json"
    )
    assert done.returncode == 0, done.stderr
    women = embedded_demo.execute("SELECT count(*) FROM items WHERE gender = 'Women'").fetchone()[0]
    assert json.loads(done.stdout)["rows"] == 2 * women == len(read(out))
    assert json.loads(run("precision", "--json").stdout)["methods"] == []


def test_curated_rows_say_why_and_raw_rows_are_the_models(embedded_demo, tmp_path):
    space = open_space(embedded_demo, "efficientnet_lite0")
    out = tmp_path / "raw.csv"
    export_similar(space, 4, out, progress=False, raw=True)
    raw = read(out)
    assert {r["reason"] for r in raw} == {"model"}
    query = raw[0]["item_id"]
    first = [r["neighbour_id"] for r in raw if r["item_id"] == query]
    add_label(embedded_demo, Query.item(query), first[0], "efficientnet_lite0", 1, False, "ana")
    add_label(embedded_demo, Query.item(query), first[3], "efficientnet_lite0", 4, True, "ana")
    export_similar(space, 4, tmp_path / "curated.csv", progress=False)
    curated = [(r["neighbour_id"], r["reason"]) for r in read(tmp_path / "curated.csv") if r["item_id"] == query]
    assert curated[0] == (first[3], "accepted") and first[0] not in dict(curated)
    assert [why for _, why in curated[1:]] == ["steered"] * 3
    done = subprocess.run(
        [sys.executable, "-m", "core", "export", "--method", "efficientnet_lite0", "-k", "4", "--raw"]
        + ["--out", str(tmp_path / "cli.csv"), "--db", str(embedded_demo.path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert read(tmp_path / "cli.csv") == raw


def test_exports_stream_to_pipes_and_redirections(embedded_demo, tmp_path):
    """`export --out /dev/stdout | head` ends quietly, `>> log` appends (even with --force), and a FIFO or
    character device is written to, not replaced: exports and labels alike."""
    import os

    db = str(embedded_demo.path)
    command = [sys.executable, "-m", "core", "--db", db]
    export = [*command, "export", "--method", "efficientnet_lite0", "-k", "3", "--out", "/dev/stdout"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    piped = subprocess.Popen(export, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert piped.stdout.readline().decode("utf-8-sig").startswith("item_id,neighbour_id")
    piped.stdout.close()  # the reader stops, as `head` does
    assert piped.wait(120) == 141
    said = piped.stderr.read().decode()  # the progress bar at most: no error, no Broken pipe
    assert not any(word in said.lower() for word in ("error", "traceback", "pipe")), said
    log = tmp_path / "log.txt"
    log.write_text("kept line\n")
    with open(log, "a") as appended:
        done = subprocess.run([*export, "--force"], cwd=ROOT, stdout=appended, stderr=subprocess.PIPE, env=env)
    assert done.returncode == 0 and "900 rows written to /dev/stdout" in done.stderr.decode()
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "kept line" and len(lines) == 2 + 900
    assert subprocess.run([*command, "labels", "export", "/dev/null"], cwd=ROOT, env=env).returncode == 0
    fifo = tmp_path / "labels.fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    assert subprocess.run([*command, "labels", "export", str(fifo)], cwd=ROOT, env=env).returncode == 0
    assert reader.communicate(timeout=60)[0].decode("utf-8").startswith("query_kind,query_key") and fifo.exists()


def test_cli_export_onto_the_catalog_is_refused(embedded_demo):
    db = embedded_demo.path
    embedded_demo.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = sha(db)
    for command in (("export", "--method", "color_hist", "--out", str(db)), ("labels", "export", str(db))):
        done = run_cli(*command, "--db", str(db))
        assert done.returncode == 2 and "catalog database" in done.stderr, done.stderr
    assert sha(db) == before
    assert embedded_demo.execute("SELECT count(*) FROM items").fetchone()[0] == 300


def test_export_refuses_journal_indices_models_and_folders(embedded_demo, tmp_path):
    from core.files.output_path import OutputRefused

    db = tmp_path / "demo.db"
    for folder in (embedded_demo.index_dir, embedded_demo.models_dir, embedded_demo.trained_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for out in (
        tmp_path / "demo.db-wal",
        tmp_path / "demo.db-shm",
        embedded_demo.index_dir / "color_hist.ann",
        embedded_demo.models_dir / "new.csv",
        embedded_demo.trained_dir / "autoencoder.csv",
        tmp_path,
    ):
        with pytest.raises(OutputRefused):
            export_similar(open_space(embedded_demo, "color_hist"), 2, out, progress=False, force=True)
        with pytest.raises(OutputRefused):
            export_labels(embedded_demo, out, force=True)
    assert db.exists() and not (embedded_demo.index_dir / "color_hist.ann").exists()


def test_a_file_not_written_by_us_needs_force(embedded_demo, tmp_path):
    from core.files.output_path import OutputRefused

    notes = tmp_path / "notes.csv"
    notes.write_text("my,own\nnotes,here\n")
    with pytest.raises(OutputRefused, match="--force"):
        export_similar(open_space(embedded_demo, "color_hist"), 2, notes, progress=False)
    assert notes.read_text() == "my,own\nnotes,here\n"
    assert export_similar(open_space(embedded_demo, "color_hist"), 2, notes, progress=False, force=True) == 600
    assert (
        export_similar(open_space(embedded_demo, "color_hist"), 3, notes, progress=False) == 900
    )  # ours now: replaced
    with pytest.raises(OutputRefused):
        export_labels(embedded_demo, notes)  # an export is not a labels file
    labels = tmp_path / "labels.csv"
    export_labels(embedded_demo, labels)
    assert export_labels(embedded_demo, labels) == 0  # a labels file may be rewritten
    done = run_cli("export", "--method", "color_hist", "--out", str(notes), "--db", str(tmp_path / "demo.db"))
    assert done.returncode == 0, done.stderr


def test_export_neutralises_formula_titles_and_keeps_numbers(embedded_demo, tmp_path):
    ids = [r[0] for r in embedded_demo.execute("SELECT id FROM items ORDER BY id")]
    for item_id, title in zip(ids, FORMULAS):
        embedded_demo.execute("UPDATE items SET title = ? WHERE id = ?", (title, item_id))
    embedded_demo.conn.commit()
    out = tmp_path / "similar.csv"
    export_similar(open_space(embedded_demo, "color_hist"), 3, out, progress=False)
    rows = read(out)
    titles = {r["item_id"]: r["item_title"] for r in rows}
    assert [titles[i] for i in ids[:6]] == ["'=1+1", "'+", "'-", "'@SUM(1)", "'\tx", "''=already quoted"]
    assert titles[ids[6]] == embedded_demo["items"].get(ids[6])["title"]  # plain text untouched
    for row in rows:
        assert row["rank"].isdigit()
        float(row["score"])  # numbers stay numbers


def test_export_of_a_method_without_vectors_writes_nothing(embedded_demo, tmp_path):
    out = tmp_path / "similar.csv"
    with embedded_demo.conn:
        embedded_demo.conn.execute("DELETE FROM embeddings WHERE method = 'hybrid'")  # the demo embeds it
    done = run_cli("export", "--method", "hybrid", "--out", str(out), "--db", str(embedded_demo.path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "no hybrid vectors" in done.stderr and "embed --method hybrid" in done.stderr
    assert not out.exists()
    assert (
        export_similar(open_space(embedded_demo, "color_hist"), 1, out, progress=False) == 300
    )  # a real one still works


def test_export_keeps_the_rows_with_the_photo_cell_empty(catalog, deleted_photos, tmp_path):
    out = tmp_path / "similar.csv"
    assert export_similar(open_space(catalog, "color_hist"), 5, out, progress=False) == 30
    photos = {}
    for row in read(out):
        assert row["item_image_url"] == row["neighbour_image_url"] == ""  # no URLs: local photos only
        photos[row["item_id"]] = row["item_image_file"]
        photos[row["neighbour_id"]] = row["neighbour_image_file"]
    assert len(photos) == 6
    for item_id, cell in photos.items():
        assert (cell == "") == (item_id in deleted_photos)
        assert cell == "" or Path(cell).is_file()


def test_exports_through_a_symlink_replace_the_target_and_keep_the_link(embedded_demo, tmp_path):
    target, link = tmp_path / "target.csv", tmp_path / "link.csv"
    db = str(embedded_demo.path)
    for command in (["export", "--method", "color_hist", "-k", "2", "--out"], ["labels", "export"]):
        target.unlink(missing_ok=True)
        link.unlink(missing_ok=True)
        assert run_cli(*command, str(target), "--db", db).returncode == 0
        link.symlink_to(target)
        before = target.read_bytes()
        target.write_bytes(before + b"")  # an export written by us: replaced without --force
        done = run_cli(*command, str(link), "--db", db)
        assert done.returncode == 0, done.stderr
        assert link.is_symlink() and link.resolve() == target and target.read_bytes() == before


def test_hidden_characters_of_stored_ids_are_escaped_in_search_and_export(embedded_demo, tmp_path):
    from core.catalog.vectors import get_vector, store

    odd = "evil\x1b[2J\u202e"
    with embedded_demo.conn:
        embedded_demo.conn.execute("INSERT INTO items (id, source, title) VALUES (?, 'csv', ?)", (odd, "t\x1b[31m"))
    store(embedded_demo, "color_hist", "1", [(odd, get_vector(embedded_demo, "color_hist", "10129"), "h")])
    db = str(embedded_demo.path)
    found = run_cli("search", "--item", "10129", "--method", "color_hist", "-k", "1", "--db", db)
    assert found.returncode == 0 and "evil\\x1b[2J\\u202e" in found.stdout and "\x1b" not in found.stdout
    out = tmp_path / "similar.csv"
    assert run_cli("export", "--method", "color_hist", "-k", "1", "--out", str(out), "--db", db).returncode == 0
    text = out.read_text(encoding="utf-8-sig")
    assert "evil\\x1b[2J\\u202e" in text and "\x1b" not in text and "\u202e" not in text
