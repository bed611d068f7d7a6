"""Photos as the catalog reads them (core/catalog/images.py, thumbnails.py): regular files only, the size
checked before reading, JPEG, PNG, WebP and AVIF told by content (EPS never reaches Ghostscript),
malformed EXIF one photo's problem."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from core.catalog.images import ImageError, decode, inspect, load_upload

from helpers import DEMO, ROOT, encoded, malformed_exif_jpeg, one_line, run_cli, small_styles

PHOTO = (DEMO / "images" / "10129.jpg").read_bytes()


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


def test_devices_and_fifos_are_refused_without_reading(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SPECIAL_FILES, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "zero is not a regular file" and lines[1] == "photo.jpg is not a regular file"
    assert lines[2] == "None"
    assert lines[3].startswith("2 [") and lines[3].count("not a regular file") == 2


def test_cli_search_with_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "query.jpg"
    os.mkfifo(fifo)
    done = run_cli("search", "--image", str(fifo), "--method", "color_hist", "--db", str(tmp_path / "c.db"))
    assert done.returncode == 2 and "not a regular file" in done.stderr


def test_size_is_checked_before_reading(tmp_path):
    from core.catalog.images import ImageError, read_file

    big = tmp_path / "big.jpg"
    big.write_bytes(PHOTO)
    with pytest.raises(ImageError, match="too large"):
        read_file(big, max_bytes=len(PHOTO) - 1)
    assert read_file(big, max_bytes=len(PHOTO)) == PHOTO


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n"


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


def test_an_eps_named_jpg_is_refused_and_ghostscript_never_runs(embedded_demo, tmp_path, fake_ghostscript):
    evil = tmp_path / "evil.jpg"
    evil.write_bytes(EPS)
    line = one_line(run_cli("search", "--image", str(evil), "--method", "color_hist", "--db", str(embedded_demo.path)))
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
def test_other_formats_are_refused_whatever_their_name(fmt, tmp_path):
    data = encoded(fmt)
    with pytest.raises(ImageError, match="not a readable image"):
        decode(data)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    assert inspect(path).status == "unreadable"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF"])
def test_the_four_photo_formats_open_by_content_whatever_their_name(fmt, tmp_path):
    path = tmp_path / "photo.gif"  # the name does not matter, the content does
    path.write_bytes(encoded(fmt))
    info = inspect(path)
    assert (info.status, info.width, info.height) == ("ok", 40, 30)


def test_the_malformed_exif_photo_really_breaks_pillow():
    from PIL import ImageOps

    image = Image.open(io.BytesIO(malformed_exif_jpeg()))
    with pytest.raises(struct.error):
        ImageOps.exif_transpose(image)


def test_malformed_exif_is_one_photo_problem_everywhere(embedded_demo, tmp_path):
    from core.catalog.thumbnails import thumbnail

    csv_path, folder = small_styles(tmp_path, 7)
    first = csv_path.read_text().splitlines()[1].split(",")[0]
    bad = folder / f"{first}.jpg"
    bad.write_bytes(malformed_exif_jpeg())
    done = run_cli("import-csv", str(csv_path), "--images", str(folder), "--db", str(tmp_path / "new.db"))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "7 items imported" in done.stdout and f"{first}.jpg: damaged photo" in done.stderr
    line = one_line(run_cli("search", "--image", str(bad), "--method", "color_hist", "--db", str(embedded_demo.path)))
    assert "cannot read the photo" in line
    with pytest.raises(ImageError):
        load_upload(malformed_exif_jpeg())
    assert thumbnail(bad, tmp_path / "thumbs") is None
