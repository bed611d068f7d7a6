"""Issue #17, the second hardening audit: each defect reproduced on real files, grouped by case number."""

from __future__ import annotations

import io
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.catalog.db import open_catalog
from core.catalog.images import ImageError, decode, inspect, load_upload
from core.catalog.importers import Columns, import_csv
from core.engines.embed import embed_catalog
from core.search.space import open_space

from helpers import DEMO, run_cli, small_styles

STYLES_HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n"


def one_line_error(done) -> str:
    """The command failed (exit 2) with exactly one line on stderr, no traceback; that line."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def encoded(fmt: str, mode: str = "RGB", **options) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (40, 30), "red").save(buffer, fmt, **options)
    return buffer.getvalue()


# --- 1. Only JPEG, PNG, WebP and AVIF are opened, by content; EPS never reaches Ghostscript ----------


@pytest.fixture
def fake_ghostscript(tmp_path, monkeypatch) -> Path:
    """A `gs` first on PATH that leaves a mark when anything runs it."""
    folder = tmp_path / "bin"
    folder.mkdir()
    mark = tmp_path / "gs-ran"
    script = folder / "gs"
    script.write_text(f"#!/bin/sh\necho ran >> {mark}\nexit 0\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return mark


def test_1_an_eps_named_jpg_is_refused_and_ghostscript_never_runs(embedded_demo, tmp_path, fake_ghostscript):
    evil = tmp_path / "evil.jpg"
    evil.write_bytes(EPS)
    line = one_line_error(
        run_cli("search", "--image", str(evil), "--method", "color_hist", "--db", str(embedded_demo.path))
    )
    assert "JPEG, PNG, WebP or AVIF" in line
    csv_path, folder = small_styles(tmp_path, 3)
    first = csv_path.read_text().splitlines()[1].split(",")[0]
    (folder / f"{first}.jpg").write_bytes(EPS)
    done = run_cli("import-csv", str(csv_path), "--images", str(folder), "--db", str(tmp_path / "new.db"))
    assert done.returncode == 0 and f"{first}.jpg: not a readable image" in done.stderr, done.stderr
    with pytest.raises(ImageError, match="JPEG, PNG, WebP or AVIF"):
        load_upload(EPS)
    assert not fake_ghostscript.exists()


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "GIF", "PDF", "ICO", "TGA", "PPM"])
def test_1_other_formats_are_refused_whatever_their_name(fmt, tmp_path):
    data = encoded(fmt)
    with pytest.raises(ImageError, match="not a readable image"):
        decode(data)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    assert inspect(path).status == "unreadable"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF"])
def test_1_the_four_photo_formats_open_by_content_whatever_their_name(fmt, tmp_path):
    path = tmp_path / "photo.gif"  # the name does not matter, the content does
    path.write_bytes(encoded(fmt))
    info = inspect(path)
    assert (info.status, info.width, info.height) == ("ok", 40, 30)


# --- 2. Malformed EXIF is that photo's failure -----------------------------------------------------


def malformed_exif_jpeg() -> bytes:
    """A real JPEG whose EXIF says "rotate" and holds a tag of the wrong type: Pillow's
    exif_transpose raises struct.error re-writing it."""
    jpeg = encoded("JPEG")
    entries = struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">HHI4s", 0x0203, 2, 4, b"abc\0")
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 2) + entries + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def test_2_the_malformed_exif_photo_really_breaks_pillow():
    from PIL import ImageOps

    image = Image.open(io.BytesIO(malformed_exif_jpeg()))
    with pytest.raises(struct.error):
        ImageOps.exif_transpose(image)


def test_2_malformed_exif_is_one_photo_problem_everywhere(embedded_demo, tmp_path):
    from core.catalog.thumbnails import thumbnail

    csv_path, folder = small_styles(tmp_path, 7)
    first = csv_path.read_text().splitlines()[1].split(",")[0]
    bad = folder / f"{first}.jpg"
    bad.write_bytes(malformed_exif_jpeg())
    done = run_cli("import-csv", str(csv_path), "--images", str(folder), "--db", str(tmp_path / "new.db"))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "7 items imported" in done.stdout and f"{first}.jpg: damaged photo" in done.stderr
    line = one_line_error(
        run_cli("search", "--image", str(bad), "--method", "color_hist", "--db", str(embedded_demo.path))
    )
    assert "cannot read the photo" in line
    with pytest.raises(ImageError):
        load_upload(malformed_exif_jpeg())
    assert thumbnail(bad, tmp_path / "thumbs") is None


def test_2_a_photo_swapped_for_malformed_exif_after_import_is_recorded_and_embed_goes_on(tmp_path):
    csv_path, folder = small_styles(tmp_path, 5)
    db = open_catalog(tmp_path / "c.db")
    import_csv(db, csv_path, folder, progress=False)
    victim = sorted(folder.iterdir())[0]
    victim.write_bytes(malformed_exif_jpeg())
    db.execute("UPDATE images SET sha256 = 'swapped' WHERE path = ?", [str(victim.resolve())])
    db.conn.commit()
    for _ in range(2):
        report = embed_catalog(db, "color_hist", progress=False)
    assert db.execute("SELECT count(*) FROM embeddings WHERE method = 'color_hist'").fetchone()[0] == 4
    reason = db.execute("SELECT reason FROM embedding_failures WHERE method = 'color_hist'").fetchone()[0]
    assert "damaged photo" in reason and report.failed == 0


# --- 3. A photo is found by its exact name -----------------------------------------------------------


def test_3_photos_are_found_by_exact_name_and_ids_with_separators_name_no_file(tmp_path, catalog):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "SKU-12.jpg").write_bytes(encoded("JPEG"))
    (folder / "SKU-12.5.jpg").write_bytes(encoded("PNG"))
    (folder / "Cap.WEBP").write_bytes(encoded("WEBP"))
    ids = ["SKU-12", "SKU-12.5", "SKU-12.7", "dir/SKU-12", "../../etc/SKU-12", "..\\SKU-12", "SKU-12.jpg", "Cap"]
    path = tmp_path / "p.csv"
    path.write_text(STYLES_HEADER + "\n" + "".join(f'"{i}",Men,A,B,Caps,Blue,Fall,2011,Casual,T\n' for i in ids))
    report = import_csv(catalog, path, folder, progress=False)
    found = dict(catalog.execute("SELECT item_id, path FROM images WHERE status = 'ok'").fetchall())
    assert {i: Path(p).name for i, p in found.items()} == {
        "SKU-12": "SKU-12.jpg",
        "SKU-12.5": "SKU-12.5.jpg",
        "Cap": "Cap.WEBP",
    }
    assert report.items == len(ids) and report.images_bad == len(ids) - 3


# --- 4. Any id round-trips through an index; control characters are refused at import --------------


def test_4_ids_with_line_breaks_are_refused_at_import_with_the_row(catalog, tmp_path):
    path = tmp_path / "odd.csv"
    rows = ['"a\nb"', "a\u2028b", "a\x85b", "a\u2029b", "a\x1b[31mb", "fine"]
    path.write_text(STYLES_HEADER + "\n" + "".join(f"{r},Men,A,B,Caps,Blue,Fall,2011,Casual,T\n" for r in rows))
    report = import_csv(catalog, path, progress=False)
    assert [r[0] for r in catalog.execute("SELECT id FROM items")] == ["fine"]
    refused = {p.where for p in report.problems if "control or invisible character" in p.reason}
    assert refused == {"row 2", "row 3", "row 4", "row 5", "row 6"}, report.problems


def test_4_an_index_round_trips_any_id(embedded_demo):
    from core.catalog.vectors import get_vector, store
    from core.search.index import problem

    odd = ["line\nbreak", "sep\u2028arator", "next\x85line", "cr\rlf", 'quote"\\back']
    vector = get_vector(embedded_demo, "color_hist", "10129")
    with embedded_demo.conn:
        embedded_demo.conn.executemany("INSERT INTO items (id, source) VALUES (?, 'csv')", [(i,) for i in odd])
    store(embedded_demo, "color_hist", "1", [(i, vector + n, "h") for n, i in enumerate(odd)])
    open_space(embedded_demo, "color_hist").build_index(progress=False)
    assert problem(embedded_demo, "color_hist") is None
    loaded = open_space(embedded_demo, "color_hist").loaded_index(rebuild=False)
    assert set(odd) <= set(loaded.ids) and len(loaded.ids) == 305
    assert np.allclose(loaded.vector(loaded.position["next\x85line"]), vector + 2)


# --- 5, 13, 14, 15. CSV headers are checked before any row is read -------------------------------------


def styles_csv(tmp_path: Path, header: str, rows: list[str], name: str = "h.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding=encoding)
    return path


ROW = "{},Men,Apparel,Topwear,Tshirts,Blue,Fall,2011,Casual,Blue tee"


@pytest.mark.parametrize(
    "header, named",
    [
        (STYLES_HEADER + ",id", "column 'id' appears twice"),
        (STYLES_HEADER + ",productDisplayName", "column 'productDisplayName' appears twice"),
        (STYLES_HEADER.replace("gender", "\ufeffgender"), "U+FEFF"),
        (STYLES_HEADER.replace("id,", "\u200bid,", 1), "U+200B"),
        (STYLES_HEADER + "".join(f",x{n}" for n in range(1000)), "1,010 columns"),
    ],
    ids=["id-twice", "title-twice", "bom-mid-header", "zero-width-in-id", "too-many-columns"],
)
def test_5_13_14_a_bad_header_is_refused_naming_the_column(catalog, tmp_path, header, named):
    width = header.count(",") + 1
    path = styles_csv(tmp_path, header, [ROW.format(1) + ",x" * (width - 10)])
    report = import_csv(catalog, path, progress=False)
    assert report.items == 0 and len(report.problems) == 1 and named in report.problems[0].reason
    assert "nothing imported" in report.problems[0].reason
    assert catalog.execute("SELECT count(*) FROM items").fetchone()[0] == 0


def test_5_a_labels_file_with_a_column_twice_is_refused(demo_catalog, tmp_path):
    from core.curation.labels import import_labels

    path = tmp_path / "labels.csv"
    path.write_text(
        "query_kind,query_key,candidate_id,method,rank,relevant,labeler,relevant\n"
        "item,10129,10130,color_hist,1,yes,ann,no\n"
    )
    report = import_labels(demo_catalog, path)
    assert report.items == 0 and "column 'relevant' appears twice" in report.problems[0].reason


def test_13_a_million_columns_is_refused_at_once(catalog, tmp_path):
    import time

    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{n}" for n in range(1_000_000)) + "\n" + ",".join("1" * 1_000_000) + "\n")
    start = time.perf_counter()
    report = import_csv(catalog, path, progress=False, columns=Columns(id="c0"))
    assert time.perf_counter() - start < 10
    assert report.items == 0 and "1,000,000 columns" in report.problems[0].reason


def test_14_a_repeated_header_line_is_skipped_and_named(catalog, tmp_path):
    path = tmp_path / "joined.csv"
    path.write_bytes(
        (STYLES_HEADER + "\n" + ROW.format(1) + "\n").encode()
        + b"\xef\xbb\xbf"
        + (STYLES_HEADER + "\n" + ROW.format(2) + "\n").encode()
    )
    report = import_csv(catalog, path, progress=False)
    assert sorted(r[0] for r in catalog.execute("SELECT id FROM items")) == ["1", "2"]
    assert any(p.where == "row 3" and "repeats the header line" in p.reason for p in report.problems)


def test_15_import_farfetch_checks_the_header_first(catalog, tmp_path):
    noise = tmp_path / "noise.csv"
    noise.write_bytes(np.random.default_rng(0).integers(1, 256, 3_000_000, dtype=np.uint8).tobytes())
    done = run_cli("import-farfetch", str(noise), "--db", str(tmp_path / "f.db"))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr[:2000]
    styles = styles_csv(tmp_path, STYLES_HEADER, [ROW.format(1)])
    done = run_cli("import-farfetch", str(styles), "--db", str(tmp_path / "f.db"))
    assert done.returncode == 1 and "not a Farfetch listings file: the header lacks images.cutOut" in done.stderr


# --- 8. LOOKALIKE_HYBRID is checked, and only the hybrid method minds ---------------------------------


@pytest.mark.parametrize(
    "value, reason",
    [
        ("efficientnet_lite0=nan,color_hist=1", "finite number"),
        ("efficientnet_lite0=inf,color_hist=1", "finite number"),
        ("garbage", "is not METHOD=WEIGHT"),
        ("efficientnet_lite0=0.5,nosuch=0.5", "nosuch is not an image method"),
        ("efficientnet_lite0=1,minilm=1", "minilm is not an image method"),
        ("color_hist=0,efficientnet_lite0=0", "above 0"),
    ],
)
def test_8_a_bad_hybrid_setting_is_one_line_naming_the_variable(embedded_demo, value, reason):
    env = {"LOOKALIKE_HYBRID": value}
    db = str(embedded_demo.path)
    listed = run_cli("methods", "--db", db, env=env)
    assert listed.returncode == 0 and "LOOKALIKE_HYBRID" in listed.stdout and reason in listed.stdout
    found = run_cli("search", "--item", "10129", "--method", "color_hist", "-k", "3", "--db", db, env=env)
    assert found.returncode == 0 and len(found.stdout.splitlines()) == 1 + 3, found.stderr  # the header, 3 rows
    stored = "SELECT item_id, version, vector FROM embeddings WHERE method = 'hybrid' ORDER BY item_id"
    before = embedded_demo.execute(stored).fetchall()
    assert before, "the demo fixture embeds hybrid: a bad setting must leave those vectors as they are"
    line = one_line_error(run_cli("embed", "--method", "hybrid", "--db", db, env=env))
    assert "LOOKALIKE_HYBRID" in line and reason in line
    assert embedded_demo.execute(stored).fetchall() == before


def test_8_fusion_weights_on_the_command_line_are_checked_too(embedded_demo):
    line = one_line_error(
        run_cli(
            "search",
            "--item",
            "10129",
            "--method",
            "efficientnet_lite0=nan,color_hist=1",
            "--db",
            str(embedded_demo.path),
        )
    )
    assert "finite number" in line


# --- 9. Writing through a symbolic link writes its target ---------------------------------------------


def test_9_exports_through_a_symlink_replace_the_target_and_keep_the_link(embedded_demo, tmp_path):
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


def test_9_a_link_to_a_device_or_fifo_is_refused(tmp_path):
    from core.files.atomic import atomic_text_writer

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for device in (Path("/dev/null"), fifo):
        link = tmp_path / f"to-{device.name}"
        link.symlink_to(device)
        with pytest.raises(OSError, match="not a regular file"):
            with atomic_text_writer(link) as handle:
                handle.write("x")
        assert link.is_symlink() and not device.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "to-fifo", "to-null"]


# --- 12. Non-finite numbers are bad values --------------------------------------------------------------


def test_12_infinite_and_nan_prices_and_stocks_are_reported_with_the_row(catalog, tmp_path):
    header = STYLES_HEADER + ",price"
    prices = ["1e309", "Infinity", "-inf", "nan", "NaN", "12.5"]
    path = styles_csv(tmp_path, header, [ROW.format(n) + f",{p}" for n, p in enumerate(prices)])
    report = import_csv(catalog, path, columns=Columns(price="price"), progress=False)
    assert [r[0] for r in catalog.execute("SELECT price FROM items")] == [12.5]
    bad = {p.where for p in report.problems if "not a finite number" in p.reason}
    assert bad == {f"row {n}" for n in range(2, 7)}


def test_12_infinite_stock_is_a_bad_value(catalog, tmp_path):
    from core.catalog.importers import import_farfetch

    header = "id,shortDescription,stockTotal,priceInfo.finalPrice"
    path = styles_csv(tmp_path, header, ["1,a,inf,1", "2,b,1e30,1", "3,c,nan,1", "4,d,7,1e309", "5,e,3,2"])
    report = import_farfetch(catalog, path, progress=False)
    assert catalog.execute("SELECT id, stock FROM items").fetchall() == [("5", 3)]
    assert {p.where for p in report.problems if "row" in p.where} == {"row 2", "row 3", "row 4", "row 5"}


def test_12_an_infinite_price_stored_before_keeps_the_pages_working(app_db):
    from helpers import page

    with app_db.conn:
        app_db.conn.execute("UPDATE items SET price = 9e999 WHERE id = '10129'")
        app_db.conn.execute("UPDATE items SET price = 10 WHERE id = '10130'")
        app_db.conn.execute("UPDATE items SET price = 99 WHERE id = '10131'")
    for name in ("catalog", "search", "export"):
        assert not page(name).exception


# --- 16. Ids: one spelling each; hidden characters never reach a terminal or an export ------------------


def test_16_spellings_of_one_id_are_one_item(catalog, tmp_path):
    spellings = ["Robe-e\u0301", "Robe-\u00e9", "Robe-\u00e9\u00a0", "\u200bRobe-\u00e9", "\ufeffRobe-\u00e9 "]
    path = styles_csv(tmp_path, STYLES_HEADER, [ROW.format(f'"{s}"') for s in spellings])
    report = import_csv(catalog, path, progress=False)
    assert [r[0] for r in catalog.execute("SELECT id FROM items")] == ["Robe-\u00e9"]
    assert report.duplicates == 4
    inner = styles_csv(tmp_path, STYLES_HEADER, [ROW.format("a\u202eb"), ROW.format("a\u200bb")], "inner.csv")
    report = import_csv(catalog, inner, progress=False)
    assert report.items == 0 and {"U+202E" in str(report.problems), "U+200B" in str(report.problems)} == {True}


def test_16_hidden_characters_of_stored_ids_are_escaped_in_search_and_export(embedded_demo, tmp_path):
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


def test_16_search_finds_an_item_by_another_spelling_of_its_id(embedded_demo):
    from core.search.queries import search

    hits = search(open_space(embedded_demo, "color_hist"), item_id="\u00a010129\u200b", k=3).results
    assert len(hits) == 3 and "10129" not in [h.item_id for h in hits]


# --- 17, 18. LOOKALIKE_DEVICE and LOOKALIKE_THREADS are checked when used, and named ------------------


@pytest.mark.parametrize("device", ["tpu", "cuda"])
def test_17_a_device_that_is_not_here_breaks_only_what_needs_it(embedded_demo, tmp_path, device):
    env = {"LOOKALIKE_DEVICE": device, "CUDA_VISIBLE_DEVICES": ""}
    db = str(embedded_demo.path)
    listed = run_cli("methods", "--db", db, env=env)
    assert listed.returncode == 0 and f"LOOKALIKE_DEVICE={device}" in listed.stdout, listed.stderr
    with embedded_demo.conn:
        embedded_demo.conn.execute("DELETE FROM embeddings WHERE method = 'color_hist' AND item_id < '11'")
    done = run_cli("embed", "--method", "color_hist", "--db", db, env=env)
    assert done.returncode == 0 and "embedded" in done.stdout, done.stderr
    found = run_cli("search", "--item", "10129", "-k", "2", "--db", db, env=env)
    assert found.returncode == 0, found.stderr
    line = one_line_error(run_cli("search", "--image", str(DEMO / "images" / "10129.jpg"), "--db", db, env=env))
    assert f"LOOKALIKE_DEVICE={device}" in line and "--device" not in line


def test_17_the_home_page_says_what_is_wrong_with_the_device(app_db, monkeypatch):
    from helpers import page, texts

    monkeypatch.setenv("LOOKALIKE_DEVICE", "tpu")
    at = page("home")
    assert not at.exception and "LOOKALIKE_DEVICE=tpu" in texts(at)


def test_18_bad_threads_spare_help_and_name_the_variable(embedded_demo):
    env = {"LOOKALIKE_THREADS": "abc"}
    assert run_cli("--help", env=env).returncode == 0
    assert run_cli("stats", "--db", str(embedded_demo.path), env=env).returncode == 0
    line = one_line_error(
        run_cli("search", "--image", str(DEMO / "images" / "10129.jpg"), "--db", str(embedded_demo.path), env=env)
    )
    assert "LOOKALIKE_THREADS" in line and "'abc'" in line


# --- 19. Files that are not regular files ---------------------------------------------------------------


def test_19_a_fifo_or_device_as_csv_is_one_line_and_never_hangs(demo_catalog, tmp_path):
    fifo = tmp_path / "labels.csv"
    os.mkfifo(fifo)
    done = run_cli("labels", "import", str(fifo), "--db", str(demo_catalog.path))
    assert done.returncode == 2 and "not a regular file" in done.stderr, done.stderr  # nothing usable: one line
    done = run_cli("import-csv", "/dev/urandom", "--db", str(tmp_path / "c.db"))
    assert done.returncode == 1 and "not a regular file" in done.stderr and "not found" not in done.stderr


# --- 20. Browsing matches % and _ literally --------------------------------------------------------------


def test_20_browse_escapes_like_wildcards(demo_catalog):
    from core.catalog.items import browse

    with demo_catalog.conn:
        demo_catalog.conn.execute("UPDATE items SET title = '100% cotton_tee' WHERE id = '10129'")
    assert browse(demo_catalog, text="%")[1] == 1
    assert browse(demo_catalog, text="_")[1] == 1
    assert browse(demo_catalog, text="n_t")[1] == 1
    assert browse(demo_catalog, text="0%")[1] == 1 and browse(demo_catalog, text="\\")[1] == 0


# --- 21. download-weights makes no catalog and fails fast offline --------------------------------------


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}])
def test_21_download_weights_offline_is_one_line_and_makes_no_catalog(tmp_path, env):
    import time

    folder = tmp_path / "nowhere"
    start = time.perf_counter()
    line = one_line_error(run_cli("download-weights", "clip", "--db", str(folder / "c.db"), env=env))
    assert time.perf_counter() - start < 30 and "clip" in line and "cannot download" in line
    assert not folder.exists()


# --- 11. The app's Catalog import answers in one line ------------------------------------------------------


def app_import(tmp_path: Path, csv_path: Path, folder: Path):
    from helpers import page

    at = page("catalog")
    at.radio[0].set_value("Product CSV").run()  # the page redraws its form for that layout, as in a browser
    at.file_uploader[0].set_value(("mine.csv", csv_path.read_bytes(), "text/csv"))
    at.text_input[0].set_value(str(folder))
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def test_11_a_bad_photo_in_an_app_import_is_one_problem(catalog, tmp_path, monkeypatch):
    from helpers import texts

    monkeypatch.setenv("LOOKALIKE_DB", str(catalog.path))
    csv_path, folder = small_styles(tmp_path, 4)
    first = csv_path.read_text().splitlines()[1].split(",")[0]
    (folder / f"{first}.jpg").write_bytes(malformed_exif_jpeg())
    at = app_import(tmp_path, csv_path, folder)
    assert "4 items imported from 4 rows: 4 new, 0 updated, 0 unchanged; photos ok 3, not usable 1" in texts(at)


def test_11_a_busy_catalog_is_one_line_at_once_in_the_app(catalog, tmp_path, monkeypatch):
    import sqlite3
    import time

    monkeypatch.setenv("LOOKALIKE_DB", str(catalog.path))
    csv_path, folder = small_styles(tmp_path, 2)
    writer = sqlite3.connect(catalog.path)
    writer.execute("BEGIN IMMEDIATE")  # another program writing
    try:
        start = time.perf_counter()
        at = app_import(tmp_path, csv_path, folder)
        assert time.perf_counter() - start < 20
        assert len(at.error) == 1 and "is busy" in at.error[0].value
    finally:
        writer.rollback()
        writer.close()
    assert catalog.execute("SELECT count(*) FROM items").fetchone()[0] == 0


def test_13_grouping_fields_are_cached_until_the_items_change(catalog, tmp_path):
    from core.curation.evaluate import grouping_fields

    header = STYLES_HEADER + "".join(f",extra{n}" for n in range(900))
    rows = [ROW.format(n) + "".join(f",v{n}{c}" for c in range(900)) for n in range(3)]
    import_csv(catalog, styles_csv(tmp_path, header, rows), progress=False)
    first = grouping_fields(catalog)
    assert "extra899" in first and "category" not in first  # one category only
    statements: list[str] = []
    catalog.conn.set_trace_callback(statements.append)
    assert grouping_fields(catalog) == first
    catalog.conn.set_trace_callback(None)
    assert len(statements) == 1 and "json_each" not in statements[0]
    rows.append(ROW.format(9).replace("Tshirts", "Shirts") + ",x" * 900)
    import_csv(catalog, styles_csv(tmp_path, header, rows, "more.csv"), progress=False)
    assert "category" in grouping_fields(catalog)


# --- 10. Each catalog's derived files are its own ------------------------------------------------------


def test_10_two_catalogs_in_one_folder_share_no_derived_files(embedded_demo, tmp_path):
    from core.catalog.thumbnails import catalog_thumbnail
    from core.engines.autoencoder_training import train
    from core.methods import list_methods
    from core.search.index import problem

    other = open_catalog(tmp_path / "other.db")
    csv_path, folder = small_styles(tmp_path, 8)
    import_csv(other, csv_path, folder, progress=False)
    embed_catalog(other, "color_hist", progress=False)
    train(other, epochs=1, batch_size=8, progress=False)
    ready = {m["name"]: m["available"] for m in list_methods(embedded_demo)}
    assert ready["autoencoder"] is False and {m["name"]: m["available"] for m in list_methods(other)}["autoencoder"]
    open_space(embedded_demo, "color_hist").build_index(progress=False)
    open_space(other, "color_hist").build_index(progress=False)
    assert problem(embedded_demo, "color_hist") is None and problem(other, "color_hist") is None
    path = other.execute("SELECT path FROM images LIMIT 1").fetchone()[0]
    assert catalog_thumbnail(other, path).is_relative_to(tmp_path / "other")
    owned = {other.index_dir, other.thumbnails_dir, other.exports_dir, other.trained_dir}
    assert all(p.is_relative_to(tmp_path / "other") for p in owned)
    assert not any(p.is_relative_to(tmp_path / "other") for p in (embedded_demo.index_dir, embedded_demo.trained_dir))


def test_10_an_autoencoder_of_the_old_shared_layout_goes_to_the_catalog_that_made_its_vectors(tmp_path):
    from core.engines.autoencoder_training import train
    from core.methods.weights import autoencoder_checkpoint

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


# --- 6. A method's vectors and index are of one version -------------------------------------------------


def test_6_re_tuning_never_mixes_vector_spaces(embedded_demo, tmp_path):
    from core.curation import tuning
    from core.curation.evaluate import evaluate
    from core.curation.export import export_similar
    from core.search.index import problem
    from core.search.near_duplicates import find_duplicates
    from core.search.queries import search
    from core.search.space import open_space

    fast = tuning.TuneOptions(epochs=3, dim=64)
    tuning.tune(embedded_demo, "t1", ["color_hist"], ["category"], options=fast, force=True, progress=False)
    embed_catalog(embedded_demo, "t1", progress=False)
    open_space(embedded_demo, "t1").build_index(progress=False)
    narrower = tuning.TuneOptions(epochs=3, dim=16)
    tuning.tune(embedded_demo, "t1", ["color_hist"], ["category"], options=narrower, force=True, progress=False)
    old = search(open_space(embedded_demo, "t1"), item_id="10129", k=5)  # not embedded since: the old vectors, said so
    assert len(old.results) == 5 and "searches use the old ones" in old.notes[0]
    photo = search(open_space(embedded_demo, "t1"), image=(DEMO / "images" / "10129.jpg").read_bytes(), k=5)
    assert len(photo.results) == 5  # read by the head that made the served vectors: one rule (issue 31.5)
    embed_catalog(embedded_demo, "t1", progress=False, limit=40)  # a partial re-embed: 40 new beside 300 old
    assert problem(embedded_demo, "t1") is None  # the served version, and its index, are unchanged
    hits = search(
        open_space(embedded_demo, "t1"),
        item_id=sorted(r[0] for r in embedded_demo.execute("SELECT id FROM items"))[0],
        k=50,
    )
    assert len(hits.results) == 50 and "new version being embedded: 40/300" in hits.notes[0]  # the complete old one
    out = tmp_path / "t1.csv"
    assert export_similar(open_space(embedded_demo, "t1"), 3, out, progress=False) == 300 * 3
    assert evaluate(open_space(embedded_demo, "t1"), "category", k=3)["queries"] == 300
    find_duplicates(open_space(embedded_demo, "t1"), 0.99, progress=False)
    embed_catalog(embedded_demo, "t1", progress=False)  # complete: the 16-d version replaces the old one
    space = open_space(embedded_demo, "t1")
    assert space.searched_version() == space.version and space.stored_versions() == {space.version}
    assert space.build_index(progress=False).items == 300 and problem(embedded_demo, "t1") is None


def test_6_a_retrained_autoencoder_searches_only_its_new_vectors(tmp_path):
    from core.engines.autoencoder_training import train
    from core.search.queries import SearchError, search
    from core.search.space import open_space

    db = open_catalog(tmp_path / "c.db")
    csv_path, folder = small_styles(tmp_path, 8)
    import_csv(db, csv_path, folder, progress=False)
    train(db, epochs=1, batch_size=8, progress=False)
    embed_catalog(db, "autoencoder", progress=False)
    train(db, epochs=2, batch_size=8, progress=False)  # a new checkpoint: a new version
    embed_catalog(db, "autoencoder", progress=False, limit=3)  # 3 of 8 with the new checkpoint
    space = open_space(db, "autoencoder")
    assert space.searched_version() != space.version and space.vector_count() == 8  # the old version, whole
    item = sorted(r[0] for r in db.execute("SELECT id FROM items"))[0]
    assert len(search(space, item_id=item, k=10).results) == 7
    photo = (folder / f"{item}.jpg").read_bytes()
    with pytest.raises(SearchError, match="cannot read a photo any more"):  # the old checkpoint is gone
        search(space, image=photo, k=10)
    embed_catalog(db, "autoencoder", progress=False)  # complete: only the new vectors are served
    space = open_space(db, "autoencoder")
    assert space.searched_version() == space.version and space.stored_versions() == {space.version}
    assert len(search(space, image=photo, k=10).results) == 8
