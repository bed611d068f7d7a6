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
from core.catalog.importers import import_csv
from core.engines.embed import embed_catalog

from helpers import DEMO, run_cli

STYLES_HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n"


def small_styles(tmp_path: Path, n: int = 6) -> tuple[Path, Path]:
    """The first `n` demo rows as a CSV, with their photos copied into a folder of their own."""
    lines = (DEMO / "styles.csv").read_text(encoding="utf-8").splitlines()[: n + 1]
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    folder = tmp_path / "photos"
    folder.mkdir()
    for line in lines[1:]:
        shutil.copy(DEMO / "images" / f"{line.split(',')[0]}.jpg", folder)
    return csv_path, folder


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
    from core.search.index import build_index, load_index, problem

    odd = ["line\nbreak", "sep\u2028arator", "next\x85line", "cr\rlf", 'quote"\\back']
    vector = get_vector(embedded_demo, "color_hist", "10129")
    with embedded_demo.conn:
        embedded_demo.conn.executemany("INSERT INTO items (id, source) VALUES (?, 'csv')", [(i,) for i in odd])
    store(embedded_demo, "color_hist", "1", [(i, vector + n, "h") for n, i in enumerate(odd)])
    build_index(embedded_demo, "color_hist", progress=False)
    assert problem(embedded_demo, "color_hist") is None
    loaded = load_index(embedded_demo, "color_hist", rebuild=False)
    assert set(odd) <= set(loaded.ids) and len(loaded.ids) == 305
    assert np.allclose(loaded.vector(loaded.position["next\x85line"]), vector + 2)
