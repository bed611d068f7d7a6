"""Issue #10 "Hardening", phase 1: every fault reproduced on real files, grouped by case number."""

from __future__ import annotations

import csv
import hashlib
import ipaddress
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.catalog import download
from core.catalog.db import open_catalog
from core.catalog.importers import import_csv, import_farfetch
from core.curation.export import export_similar
from core.curation.labels import Query, add_label, current_labels, export_labels, history, import_labels
from core.engines.embed import embed_catalog
from core.search.space import open_space

from helpers import DEMO, FIXTURES, ROOT, page, small_styles, texts

PHOTO = (DEMO / "images" / "10129.jpg").read_bytes()
STYLES_HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_rows(path: Path, encoding: str = "utf-8-sig") -> list[dict]:
    with open(path, newline="", encoding=encoding) as handle:
        return list(csv.DictReader(handle))


# --- 1. Export must not overwrite the catalog ------------------------------------------------------


def test_1_cli_export_onto_the_catalog_is_refused(embedded_demo):
    db = embedded_demo.path
    embedded_demo.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = sha(db)
    for command in (("export", "--method", "color_hist", "--out", str(db)), ("labels", "export", str(db))):
        done = run_cli(*command, "--db", str(db))
        assert done.returncode == 2 and "catalog database" in done.stderr, done.stderr
    assert sha(db) == before
    assert embedded_demo.execute("SELECT count(*) FROM items").fetchone()[0] == 300


def test_1_export_refuses_journal_indices_models_and_folders(embedded_demo, tmp_path):
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


def test_1_a_file_not_written_by_us_needs_force(embedded_demo, tmp_path):
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


# --- 2. The app listens on this computer only ------------------------------------------------------


def test_2_streamlit_binds_loopback_only():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"
    assert "server.address" in (ROOT / "docs" / "safety.md").read_text(encoding="utf-8")


def test_2_the_app_shows_only_photos_the_catalog_records(catalog, tmp_path, monkeypatch):
    import ui

    monkeypatch.setenv("LOOKALIKE_DB", str(catalog.path))
    csv_path, folder = small_styles(tmp_path)
    import_csv(catalog, csv_path, folder, progress=False)
    recorded = catalog.execute("SELECT path FROM images WHERE status = 'ok' ORDER BY path").fetchone()[0]
    outside = tmp_path / "elsewhere.jpg"  # a real photo, outside the imported folder
    outside.write_bytes(PHOTO)
    unrecorded = folder / "not-imported.jpg"  # inside the folder, but never imported
    unrecorded.write_bytes(PHOTO)
    for path in ("/etc/passwd", str(outside), str(unrecorded), f"{folder}/../{folder.name}/{Path(recorded).name}"):
        assert ui.thumb(path) is None, path
    assert Path(ui.thumb(recorded)).is_file()
    assert len(list(catalog.thumbnails_dir.rglob("*.jpg"))) == 1  # nothing else was read and kept


def test_2_pages_show_images_only_through_the_catalog_check():
    """st.image only in ui.photo (catalog photos), for an upload (Search, Label) once load_upload has checked it,
    and the docs' label curve on the Precision page;
    no page reads query parameters."""
    app = ROOT / "streamlit_app"
    sources = {path.relative_to(app).as_posix(): path.read_text(encoding="utf-8") for path in app.rglob("*.py")}
    shows = {name: source.count(".image(") for name, source in sources.items() if ".image(" in source}
    assert shows == {"ui.py": 1, "views/search.py": 1, "views/label.py": 1, "views/precision.py": 1}
    # the Precision page's one image is the project's own label curve, a fixed file under docs/
    assert "st.image(str(CURVE))" in sources["views/precision.py"]
    assert 'CURVE = Path(__file__).resolve().parents[2] / "docs" / "label_curve.png"' in sources["views/precision.py"]
    assert "where.image(image" in sources["ui.py"].split("def photo(")[1].split("def ")[0]
    assert "load_upload(" in sources["ui.py"].split("def upload_photo(")[1].split("def ")[0]
    for name in ("views/search.py", "views/label.py"):  # an upload is shown only after that check
        view = sources[name]
        assert view.index("ui.uploaded_photo(") < view.index(".image(shown")
    assert not any("query_params" in source for source in sources.values())


# --- 3. Formula injection in exported CSVs ---------------------------------------------------------

FORMULAS = ["=1+1", "+", "-", "@SUM(1)", "\tx", "'=already quoted"]


def test_3_export_neutralises_formula_titles_and_keeps_numbers(embedded_demo, tmp_path):
    ids = [r[0] for r in embedded_demo.execute("SELECT id FROM items ORDER BY id")]
    for item_id, title in zip(ids, FORMULAS):
        embedded_demo.execute("UPDATE items SET title = ? WHERE id = ?", (title, item_id))
    embedded_demo.conn.commit()
    out = tmp_path / "similar.csv"
    export_similar(open_space(embedded_demo, "color_hist"), 3, out, progress=False)
    rows = read_rows(out)
    titles = {r["item_id"]: r["item_title"] for r in rows}
    assert [titles[i] for i in ids[:6]] == ["'=1+1", "'+", "'-", "'@SUM(1)", "'\tx", "''=already quoted"]
    assert titles[ids[6]] == embedded_demo["items"].get(ids[6])["title"]  # plain text untouched
    for row in rows:
        assert row["rank"].isdigit()
        float(row["score"])  # numbers stay numbers


def test_3_label_notes_are_neutralised_and_round_trip(demo_catalog, imported_demo_path, tmp_path):
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


# --- 4. Special files as photos --------------------------------------------------------------------

SPECIAL_FILES = """
import os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))   # a regression fails, it cannot eat the machine
from pathlib import Path
from core.catalog.db import open_catalog
from core.catalog.images import inspect
from core.catalog.importers import Columns, import_csv
from core.catalog.thumbnails import thumbnail
from core.search.space import open_space
tmp = Path(sys.argv[1])
fifo = tmp / "photo.jpg"
os.mkfifo(fifo)
print(inspect("/dev/zero").reason)
print(inspect(fifo).reason)
print(thumbnail(fifo, tmp / "thumbs"))
(tmp / "shop.csv").write_text(f"sku,picture\\nA,/dev/zero\\nB,{fifo}\\n")
report = import_csv(open_catalog(tmp / "c.db"), tmp / "shop.csv", None, Columns(id="sku", image="picture"),
                    progress=False)
print(report.items, [p.reason for p in report.problems])
"""


def test_4_devices_and_fifos_are_refused_without_reading(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SPECIAL_FILES, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "zero is not a regular file" and lines[1] == "photo.jpg is not a regular file"
    assert lines[2] == "None"
    assert lines[3].startswith("2 [") and lines[3].count("not a regular file") == 2


def test_4_cli_search_with_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "query.jpg"
    os.mkfifo(fifo)
    done = run_cli("search", "--image", str(fifo), "--method", "color_hist", "--db", str(tmp_path / "c.db"), timeout=60)
    assert done.returncode == 2 and "not a regular file" in done.stderr


def test_4_size_is_checked_before_reading(tmp_path):
    from core.catalog.images import ImageError, read_file

    big = tmp_path / "big.jpg"
    big.write_bytes(PHOTO)
    with pytest.raises(ImageError, match="too large"):
        read_file(big, max_bytes=len(PHOTO) - 1)
    assert read_file(big, max_bytes=len(PHOTO)) == PHOTO


# --- 5. Labels: history in file order, valid times, no colliding key ------------------------------


def write_labels(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["query_key", "candidate_id", "method", "relevant", "labeler", "note", "created_at"]
        )
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_5_a_change_of_mind_in_a_file_ends_current(demo_catalog, tmp_path):
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


def test_5_times_are_validated_and_normalised(demo_catalog, tmp_path):
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


def test_5_many_labels_in_the_same_millisecond_are_all_kept(demo_catalog):
    q, a = [r[0] for r in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 2")]
    for n in range(600):
        add_label(demo_catalog, Query.item(q), a, "m", 1, n % 2 == 0, "ana")
    assert demo_catalog.execute("SELECT count(*) FROM labels").fetchone()[0] == 600
    assert current_labels(demo_catalog, Query.item(q)) == {a: False}  # the 600th click


def test_5_migration_sinks_unreadable_times(tmp_path, monkeypatch):
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


# --- 6. Non-UTF-8 CSVs ------------------------------------------------------------------------------


def test_6_latin1_and_utf16_product_csvs_keep_their_accents(catalog, tmp_path):
    text = f"{STYLES_HEADER}\n1,Men,A,B,Tshirts,Blue,Fall,2011,Casual,Café crème\n"
    for name, encoding in (("latin1.csv", "latin-1"), ("utf16.csv", "utf-16")):
        (tmp_path / name).write_bytes(text.replace("1,Men", f"{name[:5]},Men").encode(encoding))
    latin = import_csv(catalog, tmp_path / "latin1.csv", progress=False)
    assert catalog["items"].get("latin")["title"] == "Café crème"
    assert any("not UTF-8" in p.reason and "Windows-1252" in p.reason for p in latin.problems)
    utf16 = import_csv(catalog, tmp_path / "utf16.csv", progress=False)
    assert catalog["items"].get("utf16")["title"] == "Café crème"
    assert not any("UTF-8" in p.reason for p in utf16.problems)
    (tmp_path / "nobom.csv").write_bytes(text.encode("utf-16-le"))
    refused = import_csv(catalog, tmp_path / "nobom.csv", progress=False)
    assert not refused.ok and "UTF-16 without a byte-order mark" in refused.problems[0].reason


def test_6_latin1_farfetch_and_labels_files(catalog, tmp_path):
    rows = read_rows(FIXTURES / "farfetch_40.csv", "utf-8")[:2]
    rows[0]["shortDescription"] = "Robe à fleurs"
    path = tmp_path / "listings.csv"
    with open(path, "w", newline="", encoding="cp1252") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import_farfetch(catalog, path, progress=False)
    assert catalog["items"].get(rows[0]["id"])["title"] == "Robe à fleurs"
    labels = tmp_path / "labels.csv"
    labels.write_bytes(
        f"query_key,candidate_id,method,relevant,labeler,note\n"
        f"{rows[0]['id']},{rows[1]['id']},color_hist,yes,Zoë,très proche\n".encode("latin-1")
    )
    report = import_labels(catalog, labels)
    assert report.items == 1 and "not UTF-8" in report.problems[0].reason
    assert catalog.execute("SELECT labeler, note FROM labels").fetchone() == ("Zoë", "très proche")


# --- 7. A misspelt photo folder ---------------------------------------------------------------------


def test_7_a_missing_photo_folder_is_an_error_and_changes_nothing(tmp_path):
    csv_path, folder = small_styles(tmp_path)
    db = tmp_path / "t.db"
    assert run_cli("import-csv", str(csv_path), "--images", str(folder), "--db", str(db)).returncode == 0
    done = run_cli("import-csv", str(csv_path), "--images", str(tmp_path / "photoz"), "--db", str(db))
    assert done.returncode == 1 and "photo folder not found" in done.stderr
    catalog = open_catalog(db)
    assert catalog.execute("SELECT count(*) FROM images WHERE status = 'ok'").fetchone()[0] == 6
    report = import_farfetch(catalog, FIXTURES / "farfetch_40.csv", tmp_path / "photoz", progress=False)
    assert not report.ok and "photo folder not found" in report.problems[0].reason


def test_7_and_13_every_missing_photo_is_listed_and_a_downgrade_is_named(catalog, tmp_path):
    csv_path, folder = small_styles(tmp_path)
    first = import_csv(catalog, csv_path, folder, progress=False)
    assert first.images_ok == 6 and first.problems == []
    embed_catalog(catalog, "color_hist", progress=False)
    gone = sorted(folder.iterdir())[0]
    gone.unlink()  # a photo deleted after embedding
    with open(csv_path, "a", encoding="utf-8") as handle:
        handle.write("999999,Men,A,B,Tshirts,Blue,Fall,2011,Casual,No photo at all\n")
    again = import_csv(catalog, csv_path, folder, progress=False)
    assert again.images_ok == 5 and again.images_bad == 2
    reasons = [str(p) for p in again.problems]
    assert len(reasons) == 2
    missing = [r[0] for r in catalog.execute("SELECT item_id FROM images WHERE status = 'missing' ORDER BY item_id")]
    assert missing == sorted([gone.stem, "999999"])
    assert sum("was usable before this import" in r for r in reasons) == 1
    assert any(r.startswith("row 8: no local file") for r in reasons)


# --- 8. Numeric arguments are checked at the edge ---------------------------------------------------

BAD_ARGUMENTS = [
    ("export", "--method", "color_hist", "-k", "-1"),
    ("export", "--method", "color_hist", "-k", "0"),
    ("evaluate", "--method", "color_hist", "-k", "0"),
    ("evaluate", "--method", "color_hist", "--queries", "0"),
    ("precision", "-k", "0"),
    ("search", "--item", "ID", "-k", "0"),
    ("index", "--method", "color_hist", "--trees", "0"),
    ("embed", "--method", "color_hist", "--batch-size", "0"),
    ("embed", "--method", "color_hist", "--batch-size", "-1"),
    ("embed", "--method", "color_hist", "--limit", "0"),
    ("embed", "--engine", "ray", "--workers", "0"),
    ("embed", "--engine", "ray", "--gpus-per-worker", "-1"),
    ("train-autoencoder", "--epochs", "0"),
    ("search", "--item", "ID", "--filter", "price_max=nan"),
    ("export", "--method", "color_hist", "--filter", "price_min=inf"),
    ("duplicates", "--method", "color_hist", "--threshold", "0"),
    ("duplicates", "--method", "color_hist", "--threshold", "1.5"),
    ("duplicates", "--method", "color_hist", "--threshold", "nan"),
    ("index", "--method", "color_hist", "--trees", "ten"),
]


def test_8_bad_numbers_are_one_line_and_exit_2_before_anything_runs(embedded_demo, tmp_path, capsys):
    from core.cli import main

    item = embedded_demo.execute("SELECT min(id) FROM items").fetchone()[0]
    embedded_demo.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = sha(embedded_demo.path)
    out = tmp_path / "similar.csv"
    for args in BAD_ARGUMENTS:
        args = [item if a == "ID" else a for a in args] + (["--out", str(out)] if args[0] == "export" else [])
        assert main([*args, "--db", str(embedded_demo.path)]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: argument ") and "--help" in err, (args, err)
    assert not out.exists() and not (tmp_path / "indices").exists()
    assert sha(embedded_demo.path) == before


def test_8_the_library_refuses_the_same_numbers(embedded_demo, tmp_path):
    from core.catalog.filters import parse_filters
    from core.curation.evaluate import evaluate

    for value in ("nan", "inf", "-inf"):
        with pytest.raises(ValueError, match="finite number"):
            parse_filters([f"price_max={value}"])
    assert parse_filters(["price_max=$1,200"]) == {"price_max": 1200.0}
    for k in (0, -1):
        with pytest.raises(ValueError, match="at least 1"):
            export_similar(open_space(embedded_demo, "color_hist"), k, tmp_path / "similar.csv", progress=False)
        with pytest.raises(ValueError, match="at least 1"):
            evaluate(open_space(embedded_demo, "color_hist"), k=k)
    with pytest.raises(ValueError, match="at least 1"):
        open_space(embedded_demo, "color_hist").build_index(trees=0, progress=False)
    for batch_size in (0, -1):
        with pytest.raises(ValueError, match="batch_size must be at least 1"):
            embed_catalog(embedded_demo, "color_hist", batch_size=batch_size, progress=False)
    assert not (tmp_path / "similar.csv").exists() and not embedded_demo.index_dir.exists()


def test_8_export_of_a_method_without_vectors_writes_nothing(embedded_demo, tmp_path):
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


# --- 9. Downloads -----------------------------------------------------------------------------------


class Server(BaseHTTPRequestHandler):
    """Photos, slow photos, a redirect; counts requests and how many run at once."""

    hits: dict[str, int] = {}
    busy = 0
    most_busy = 0
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.counted_out = False
        with Server.lock:
            Server.hits[self.path] = Server.hits.get(self.path, 0) + 1
            Server.busy += 1
            Server.most_busy = max(Server.most_busy, Server.busy)
        try:
            self._answer()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: stop
        finally:
            self._done()

    def _done(self) -> None:
        """This request no longer counts as busy (once only; called before its body is sent)."""
        if not self.counted_out:
            self.counted_out = True
            with Server.lock:
                Server.busy -= 1

    def _answer(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/img/ok.jpg")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if "gone" in self.path:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(PHOTO)))
        self.end_headers()
        if "trickle" in self.path:  # one byte every 0.2 s, 40 bytes at most
            for n in range(40):
                self.wfile.write(PHOTO[n : n + 1])
                self.wfile.flush()
                time.sleep(0.2)
            return
        if "slow" in self.path:
            time.sleep(0.3)
        self._done()  # before the body: once the client has it, it may start its next photo at once
        self.wfile.write(PHOTO)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    httpd.daemon_threads = True
    Server.hits, Server.busy, Server.most_busy = {}, 0, 0
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_9_a_trickling_server_meets_the_deadline(server, tmp_path):
    started = time.monotonic()
    with pytest.raises(download.DownloadError, match="not finished within 1 s"):
        download.fetch(
            f"{server}/img/trickle.jpg",
            tmp_path / "t.jpg",
            download.session(retries=0),
            deadline_s=1,
            allow_private_hosts=True,
        )
    assert time.monotonic() - started < 5
    assert not (tmp_path / "t.jpg").exists()


def farfetch_csv(tmp_path: Path, urls: list[tuple[str, str]]) -> Path:
    rows = read_rows(FIXTURES / "farfetch_40.csv", "utf-8")[: len(urls)]
    for row, (cutout, model) in zip(rows, urls):
        row["images.cutOut"], row["images.model"] = cutout, model
    path = tmp_path / "listings.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_9_photos_download_several_at_once(server, tmp_path):
    path = farfetch_csv(tmp_path, [(f"{server}/slow/{n}a.jpg", f"{server}/slow/{n}b.jpg") for n in range(4)])
    report = download.download_listing_images(path, tmp_path / "photos", progress=False, allow_private_hosts=True)
    assert report.images_ok == 8 and report.problems == []
    assert 1 < Server.most_busy <= download.WORKERS


def test_9_credentials_never_shown_stored_or_exported(server, tmp_path, catalog):
    secret = server.replace("http://", "http://shop:s3cret@")
    path = farfetch_csv(
        tmp_path, [(f"{secret}/img/1.jpg", f"{secret}/img/gone.jpg"), (f"{secret}/img/2.jpg", f"{secret}/img/3.jpg")]
    )
    report = import_farfetch(
        catalog, path, tmp_path / "photos", download=True, progress=False, allow_private_hosts=True
    )
    assert report.images_ok == 3 and report.images_bad == 1
    assert "HTTP 404" in str(report.problems) and "s3cret" not in str(report.as_dict())
    stored = catalog.execute("SELECT group_concat(url) FROM images").fetchone()[0] + "".join(
        r[0] for r in catalog.execute("SELECT attributes FROM items")
    )
    assert "s3cret" not in stored and f"{server}/img/1.jpg" in stored
    embed_catalog(catalog, "color_hist", progress=False)
    out = tmp_path / "similar.csv"
    export_similar(open_space(catalog, "color_hist"), 1, out, progress=False)
    assert "s3cret" not in out.read_text(encoding="utf-8-sig") and "/img/1.jpg" in out.read_text(encoding="utf-8-sig")


def test_9_private_hosts_are_refused_unless_allowed(server, tmp_path, monkeypatch):
    http = download.session(retries=0)
    with pytest.raises(download.DownloadError, match="--allow-private-hosts"):
        download.fetch(f"{server}/img/ok.jpg", tmp_path / "a.jpg", http)
    assert Server.hits == {}  # refused before connecting
    # Treat 127.0.0.1 as a public address so that only the redirect's target, localhost, is private.
    real = download._addresses
    monkeypatch.setattr(
        download,
        "_addresses",
        lambda host, port: [ipaddress.ip_address("93.184.216.34")] if host == "127.0.0.1" else real(host, port),
    )
    with pytest.raises(download.DownloadError, match="localhost is a private"):
        download.fetch(f"{server}/redirect", tmp_path / "b.jpg", http)
    assert Server.hits == {"/redirect": 1}
    monkeypatch.undo()
    assert download.fetch(f"{server}/redirect", tmp_path / "c.jpg", http, allow_private_hosts=True).exists()


# --- 12. The app answers in one line instead of crashing -----------------------------------------


def png_400_megapixels() -> bytes:
    """A valid black-and-white PNG of 20,000 x 20,000 pixels (about 50 kB: its rows compress to nothing)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    side = 20_000
    packer = zlib.compressobj(9)
    row = b"\0" * (1 + side // 8)  # filter byte + one bit a pixel
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", data)
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("notes.png", b"%PDF-1.4 a document, not a photo", "not a readable image"),
        ("cut.jpg", PHOTO[: len(PHOTO) // 2], "truncated"),
        ("huge.png", png_400_megapixels(), "too large (over 40,000,000 pixels)"),
    ],
    ids=["not-an-image", "truncated-jpeg", "400-megapixels"],
)
def test_12_a_bad_photo_upload_is_one_line_and_search_stays_usable(app_db, name, data, reason):
    at = page("search")
    at.radio[0].set_value("Photo").run()
    at.file_uploader[0].set_value((name, data, "image/png")).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and reason in at.error[0].value
    assert not at.subheader  # nothing was searched with it
    at.file_uploader[0].set_value(("shopper.jpg", PHOTO, "image/jpeg")).run()  # the page still works
    assert not at.exception and not at.error
    assert len(at.session_state["search_results"]["hits"]) == 10


def labels_upload(app_db, content: bytes):
    """The Export page after merging an uploaded labels CSV."""
    at = page("export")
    at.file_uploader[0].set_value(("team.csv", content, "text/csv")).run()
    [button] = [b for b in at.button if b.label == "Import labels"]
    button.click().run()
    return at


def test_12_labels_csv_that_is_not_text_or_has_huge_ranks_is_reported(app_db):
    a, b = [r[0] for r in app_db.execute("SELECT id FROM items ORDER BY id LIMIT 2")]
    header = "query_key,candidate_id,method,rank,relevant,labeler\n"
    bad = {
        "utf-16 without a byte-order mark": f"{header}{a},{b},color_hist,1,yes,ana\n".encode("utf-16-le"),
        "a spreadsheet saved as .csv": b"PK\x03\x04\x14\x00\x06\x00" + b"\0" * 64 + b"[Content_Types].xml",
        "a NUL in the header": b"query_key,candidate_id\0,method,rank,relevant,labeler\n",
        "a header cell over the reader's limit": (header[:-1] + "," + "h" * 2_000_000 + "\n").encode(),
    }
    for what, content in bad.items():
        at = labels_upload(app_db, content)
        assert not at.exception, (what, at.exception)
        assert "0 new labels" in texts(at) and len(at.dataframe[0].value) == 1, what
    rows = [
        f"{a},{b},color_hist,{'9' * 5000},yes,Zoë,",
        f"{a},{b},color_hist,1,yes,Zoë,0001-01-01T00:00:00+01:00",
        f"{a},{b},color_hist,2,no,Zoë,2024-05-01T09:30:00Z",
    ]
    at = labels_upload(app_db, (header.replace("labeler", "labeler,created_at") + "\n".join(rows)).encode("cp1252"))
    assert not at.exception, at.exception
    assert "1 new labels (0 already present, 3 rejected)" in texts(at)  # the encoding note and two rows
    problems = at.dataframe[0].value["problem"].tolist()
    assert "not UTF-8" in problems[0] and "not a whole number" in problems[1] and "out of range" in problems[2]
    assert all(len(problem) < 200 for problem in problems)
    assert app_db.execute("SELECT rank, labeler FROM labels").fetchall() == [(2, "Zoë")]


def test_12_an_export_that_cannot_be_written_is_one_line(app_db):
    (app_db.exports_dir).write_text("a file where the exports folder should be")
    at = page("export")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "exports" in at.error[0].value
    assert "export_file" not in at.session_state


# --- 13. A photo deleted after embedding ------------------------------------------------------------


@pytest.fixture
def deleted_photos(catalog, tmp_path) -> list[str]:
    """Six items embedded with color_hist, then the photos of the first two deleted; their ids."""
    csv_path, folder = small_styles(tmp_path)
    import_csv(catalog, csv_path, folder, progress=False)
    embed_catalog(catalog, "color_hist", progress=False)
    gone = sorted(folder.iterdir())[:2]
    for path in gone:
        path.unlink()
    return [path.stem for path in gone]


def test_13_search_keeps_an_item_whose_photo_was_deleted_and_marks_it(catalog, deleted_photos):
    from core.search.queries import search

    query = catalog.execute("SELECT id FROM items ORDER BY id DESC").fetchone()[0]
    hits = {h.item_id: h for h in search(open_space(catalog, "color_hist"), item_id=query, k=5).results}
    assert len(hits) == 5 and set(deleted_photos) <= set(hits)
    for item_id, hit in hits.items():
        assert hit.photo_missing == (item_id in deleted_photos)
        assert hit.image_path and Path(hit.image_path).name == f"{item_id}.jpg"  # kept: says what to restore
        assert Path(hit.image_path).is_file() != hit.photo_missing


def test_13_export_keeps_the_rows_with_the_photo_cell_empty(catalog, deleted_photos, tmp_path):
    out = tmp_path / "similar.csv"
    assert export_similar(open_space(catalog, "color_hist"), 5, out, progress=False) == 30
    photos = {}
    for row in read_rows(out):
        assert row["item_image_url"] == row["neighbour_image_url"] == ""  # no URLs: local photos only
        photos[row["item_id"]] = row["item_image_file"]
        photos[row["neighbour_id"]] = row["neighbour_image_file"]
    assert len(photos) == 6
    for item_id, cell in photos.items():
        assert (cell == "") == (item_id in deleted_photos)
        assert cell == "" or Path(cell).is_file()


def test_13_the_app_says_photo_missing_instead_of_breaking(catalog, deleted_photos, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_DB", str(catalog.path))
    at = page("search")
    at.selectbox[0].set_value(deleted_photos[0]).run()  # the query's own photo is gone too
    assert not at.exception, at.exception
    assert "Query · photo missing" in texts(at)
    assert [c.value for c in at.caption].count("photo missing") == 1  # the other deleted one, among the results
    assert len(at.session_state["search_results"]["hits"]) == 5
    export = page("export")
    export.button[0].click().run()
    assert not export.exception
    assert "2 items' photos were deleted or moved since import" in texts(export)


# --- 13. NUL bytes in ids ---------------------------------------------------------------------------


def test_13_nul_bytes_in_ids_are_rejected_with_a_problem(catalog, tmp_path):
    path = tmp_path / "nul.csv"
    path.write_text(
        f"{STYLES_HEADER}\n12\x0034,Men,A,B,Tshirts,Blue,Fall,2011,Casual,Nul\n"
        "77,Men,A,B,Tshirts,Blue,Fall,2011,Casual,Fine\n",
        encoding="utf-8",
    )
    report = import_csv(catalog, path, progress=False)
    assert report.items == 1
    assert any(p.where == "row 2" and "NUL" in p.reason for p in report.problems)
    assert [r[0] for r in catalog.execute("SELECT id FROM items")] == ["77"]


# --- 10. Errors that used to end in tracebacks ------------------------------------------------------


def test_10_a_folder_as_catalog_is_one_line(tmp_path):
    done = run_cli("stats", "--db", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "is a folder" in done.stderr
    assert "Traceback" not in done.stderr


def test_10_huge_ranks_and_notes_are_reported_not_raised(demo_catalog, tmp_path):
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


def test_10_a_cell_over_the_reader_limit_rejects_the_file_in_one_line(demo_catalog, tmp_path):
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


def _corrupted_catalog(tmp_path: Path) -> tuple[Path, str]:
    """A small embedded catalog, closed and checkpointed, with garbage written over the first page of every
    table and index but the schema's (so it opens, and fails when its data is read)."""
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
def test_10_a_damaged_catalog_is_one_line_saying_how_to_recover(tmp_path, command):
    path, item = _corrupted_catalog(tmp_path)
    done = run_cli(*[item if a == "ITEM" else a for a in command], "--db", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "is damaged" in done.stderr and ".recover" in done.stderr, done.stderr


def _full_after(db, pages: int) -> None:
    """Let the catalog grow by `pages` pages only: SQLite then fails with "database or disk is full"."""
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0] + pages}")


def test_10_a_full_disk_during_import_keeps_the_committed_batches(catalog, monkeypatch):
    from core.catalog import importers
    from core.files.failures import PartialWork

    monkeypatch.setattr(importers, "BATCH", 50)
    _full_after(catalog, 20)
    with pytest.raises(
        PartialWork,
        match=r"database or disk is full: (\d+) items imported and committed before "
        "the error; run the same command again to carry on",
    ) as stopped:
        import_csv(catalog, DEMO / "styles.csv", DEMO / "images", progress=False)
    kept = int(stopped.value.progress.split()[0])
    assert 0 < kept < 300 and kept % 50 == 0
    assert catalog.execute("SELECT count(*) FROM items").fetchone()[0] == kept
    _full_after(catalog, 10_000)
    assert import_csv(catalog, DEMO / "styles.csv", DEMO / "images", progress=False).items == 300
    assert catalog.execute("SELECT count(*) FROM items").fetchone()[0] == 300


def test_10_a_full_disk_during_embedding_keeps_the_finished_batches(demo_catalog):
    from core.files.failures import PartialWork

    _full_after(demo_catalog, 150)
    with pytest.raises(
        PartialWork,
        match=r"database or disk is full: (\d+) of 300 embedded before the error; "
        "run the same command again to carry on",
    ) as stopped:
        embed_catalog(demo_catalog, "color_hist", batch_size=32, progress=False)
    kept = int(stopped.value.progress.split()[0])
    assert 0 < kept < 300 and kept % 32 == 0
    stored = "SELECT count(*) FROM embeddings WHERE method = 'color_hist'"
    assert demo_catalog.execute(stored).fetchone()[0] == kept
    _full_after(demo_catalog, 10_000)
    assert embed_catalog(demo_catalog, "color_hist", progress=False).embedded == 300 - kept
    assert demo_catalog.execute(stored).fetchone()[0] == 300


def test_10_the_cli_says_the_disk_is_full_and_how_far_it_got(catalog, tmp_path, monkeypatch, capsys):
    from core.catalog import vectors
    from core.cli import main

    csv_path, folder = small_styles(tmp_path)
    import_csv(catalog, csv_path, folder, progress=False)
    real_store, calls = vectors.store, []

    def store_then_fill_the_disk(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real_store(*args, **kwargs)

    monkeypatch.setattr(vectors, "store", store_then_fill_the_disk)
    assert main(["embed", "--method", "color_hist", "--batch-size", "2", "--db", str(catalog.path)]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert err.startswith("error: the disk is full (database or disk is full)"), err
    assert "finished work was kept" in err and err.endswith("; 2 of 6 embedded before the error")
    monkeypatch.setattr(vectors, "store", real_store)
    assert main(["embed", "--method", "color_hist", "--db", str(catalog.path), "--json"]) == 0
    assert '"embedded": 4' in capsys.readouterr().out


@pytest.mark.parametrize(
    "failure, says",
    [
        (lambda: OSError(28, "No space left on device"), "the disk is full"),
        (lambda: MemoryError(), "out of memory"),
        (lambda: sqlite3.DatabaseError("database disk image is malformed"), "is damaged"),
    ],
    ids=["ENOSPC", "MemoryError", "malformed"],
)
def test_10_every_failure_family_is_one_line_with_details_in_the_log(
    demo_catalog, monkeypatch, capsys, caplog, failure, says
):
    from core.catalog import items as catalog_module
    from core.cli import main

    def fail(db):
        raise failure()

    monkeypatch.setattr(catalog_module, "stats", fail)
    caplog.set_level(logging.INFO, logger="core")  # what -v shows
    assert main(["stats", "--db", str(demo_catalog.path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err, err
    [record] = [r for r in caplog.records if r.name == "core"]
    assert record.exc_info and isinstance(record.exc_info[1], type(failure()))


# --- 11. Another application's SQLite file is never modified -----------------------------------------


def _foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE items (sku TEXT PRIMARY KEY, qty INTEGER)")
    conn.execute("INSERT INTO items VALUES ('a', 1)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("command", [["stats"], ["stats", "--json"], ["methods"]])
def test_11_read_commands_leave_a_foreign_sqlite_file_untouched(tmp_path, command):
    foreign = tmp_path / "shop.db"
    _foreign_sqlite(foreign)
    before = sha(foreign)
    done = run_cli(*command, "--db", str(foreign))
    assert done.returncode == 2 and "another application" in done.stderr and "Traceback" not in done.stderr
    assert sha(foreign) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.db"]  # no -wal / -shm left behind


def test_11_import_refuses_a_foreign_sqlite_file(tmp_path):
    foreign = tmp_path / "shop.db"
    _foreign_sqlite(foreign)
    before = sha(foreign)
    done = run_cli("import-csv", str(DEMO / "styles.csv"), "--images", str(DEMO / "images"), "--db", str(foreign))
    assert done.returncode == 2 and "another application" in done.stderr
    assert sha(foreign) == before


def test_11_an_empty_file_becomes_a_catalog(tmp_path):
    empty = tmp_path / "new.db"
    empty.touch()
    assert open_catalog(empty).execute("SELECT count(*) FROM items").fetchone()[0] == 0


# --- 13. A read-only catalog can still be read -------------------------------------------------------


def test_13_read_only_open_reads_without_writing(embedded_demo):
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


def test_13_read_commands_need_an_existing_catalog(tmp_path):
    done = run_cli("stats", "--db", str(tmp_path / "nothing.db"))
    assert done.returncode == 2 and "no catalog at" in done.stderr
    assert not (tmp_path / "nothing.db").exists()


def test_13_only_imports_and_demo_create_a_catalog(tmp_path, capsys):
    from core.cli import main

    missing = tmp_path / "nothing.db"
    for args in (
        ["stats"],
        ["precision"],
        ["labels", "export", str(tmp_path / "l.csv")],
        ["labels", "import", str(tmp_path / "l.csv")],
        ["evaluate", "--method", "color_hist"],
        ["search", "--item", "1", "--method", "color_hist"],
        ["index", "--method", "color_hist"],
        ["export", "--method", "color_hist", "--out", str(tmp_path / "s.csv")],
        ["duplicates", "--method", "color_hist"],
        ["embed", "--method", "color_hist"],
        ["train-autoencoder"],
    ):
        assert main([*args, "--db", str(missing)]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"no catalog at {missing}" in err, (args, err)
    assert main(["methods", "--db", str(missing)]) == 0  # the methods need no catalog
    assert "color_hist" in capsys.readouterr().out
    assert sorted(tmp_path.iterdir()) == []


def test_13_read_commands_open_the_catalog_read_only(embedded_demo, tmp_path, capsys, monkeypatch):
    from core import cli
    from core.cli import common

    opened = []
    real_open = common.open_catalog

    def record(path, **how):
        opened.append(how)
        return real_open(path, **how)

    monkeypatch.setattr(common, "open_catalog", record)
    embedded_demo.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = sha(embedded_demo.path)
    for args in (
        ["stats"],
        ["methods"],
        ["precision"],
        ["labels", "export", str(tmp_path / "l.csv")],
        ["evaluate", "--method", "color_hist", "--queries", "20"],
    ):
        opened.clear()
        assert cli.main([*args, "--db", str(embedded_demo.path)]) == 0, (args, capsys.readouterr().err)
        assert opened == [{"read_only": True}] or opened == [{"read_only": True, "create": False}], (args, opened)
    assert sha(embedded_demo.path) == before


def test_13_temporary_files_of_dead_writers_are_cleared(tmp_path):
    from core.files.atomic import atomic_text_writer

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    target = tmp_path / "m.ann"
    left = tmp_path / f".m.ann.{dead}.x1y2.part"  # what a kill -9 during save leaves
    live = tmp_path / f".m.ann.{os.getpid()}.abcd.part"  # a writer still at work
    left.write_bytes(b"\0" * 1024)
    live.write_bytes(b"\0" * 1024)
    with atomic_text_writer(target) as handle:
        handle.write("done")
    assert target.read_text() == "done"
    assert not left.exists() and live.exists()
