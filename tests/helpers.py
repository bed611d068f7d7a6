"""What tests share besides fixtures: the repository's folders, the shared-data marker, the command
line as a user runs it, app helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
FIXTURES = ROOT / "tests" / "fixtures"
DEMO = ROOT / "demo"
APP = ROOT / "streamlit_app"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m core ARGS` in a real subprocess, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def run_here(*args: str) -> subprocess.CompletedProcess:
    """`python -m core ARGS` run in this process (`core.cli.main`), answered as `run_cli` answers: for
    tests of what a command does, not of how it starts (that costs a new Python and its imports each
    time). Like a new process it starts with no cached index or vectors and no device or precision
    chosen; its warnings go to its stderr as the command line's logging sends them, and what it chose
    is undone after it. Not for a test that changes settings between commands (the library may keep
    what it derived from them for the process): run_cli there."""
    import io
    import logging
    from contextlib import redirect_stderr, redirect_stdout

    from core import settings
    from core.cli import main
    from core.methods import backends, devices

    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out), redirect_stderr(err):
        patch.setattr(sys, "argv", [str(ROOT / "core" / "__main__.py"), *args])  # as `python -m core` names itself
        patch.setattr(backends, "_precision", None)
        for name, fresh in (("_selected", None), ("_precision", None), ("_warned", False)):
            patch.setattr(devices, name, fresh)
        settings.reload()
        clear_caches()
        root.addHandler(handler)
        try:
            code = main(list(args))
        finally:
            root.removeHandler(handler)
            clear_caches()
    settings.reload()
    return subprocess.CompletedProcess(["python", "-m", "core", *args], code, out.getvalue(), err.getvalue())


def clear_caches() -> None:
    """Forget the indices, vectors, counts, fields and gone items cached by an earlier test or command
    (loaded models stay)."""
    from core.search import caches

    caches.clear(caches.INDICES, caches.MATRICES, caches.COUNTS, caches.FIELDS, caches.GONE)


def page(name: str):
    """The app opened at its entry point (Home.py) and switched to views/<name>.py, as a person would."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=120)
    at.run()
    if name != "home":
        at.switch_page(f"views/{name}.py").run()
    assert not at.exception, at.exception
    return at


def texts(at) -> str:
    """Every text the page shows, one element a line."""
    parts = [
        e.value
        for kind in ("markdown", "caption", "info", "success", "error", "warning", "title", "subheader")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


def opened_copy(source: Path, path: Path):
    """A fixture's catalog: `source` copied to `path` and opened, closed after the test (`yield from` it)."""
    from core.catalog.db import open_catalog

    shutil.copy(source, path)
    db = open_catalog(path)
    yield db
    db.conn.close()


def moved_photo(db, folder: Path) -> tuple[str, Path]:
    """(item id, path) of the first item's photo, copied into `folder` and the catalog pointed at the
    copy, so a test may delete or move it without touching the demo photos."""
    from core.catalog.vectors import primary_images_sql

    item_id, path, _ = db.execute(f"{primary_images_sql()} ORDER BY 1 LIMIT 1").fetchone()
    copy = folder / Path(path).name
    shutil.copy(path, copy)
    db.execute("UPDATE images SET path = ? WHERE item_id = ? AND path = ?", (str(copy), item_id, path))
    db.conn.commit()
    return item_id, copy


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


def link_tree(source: Path, target: Path) -> None:
    """Hard-link every file of `source` missing from `target` into it (same layout): a copy that costs
    nothing. The files become read-only, so a writer that changed one in place instead of replacing it
    (as every writer here does, atomically) would fail rather than change every copy."""
    for path in source.rglob("*"):
        if path.is_file():
            path.chmod(0o444)
            copy = target / path.relative_to(source)
            if not copy.exists():
                copy.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, copy)


def save_tiny_vit(folder: Path, processor=None, **config) -> None:
    """A tiny random ViT (the `vit` method's model class: 2 layers of 2 heads, 32-px photos unless
    `config` says otherwise) saved in `folder` with `processor` (default: a plain ViT processor at
    the model's size). The product never makes one; tests load it through the real loading code."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    sizes = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    model_config = ViTConfig(**{**sizes, "image_size": 32, "patch_size": 8, **config})
    ViTModel(model_config).save_pretrained(folder)
    side = model_config.image_size
    (processor or ViTImageProcessor(size={"height": side, "width": side})).save_pretrained(folder)


def true_grade(db, query: str, candidate: str) -> str:
    """A simulated rater's verdict from the shared photos' fields: good for the same article type and
    colour, close for the same type in another colour, wrong otherwise."""
    (qc, qk), (cc, ck) = (
        db.execute("SELECT category, colour FROM items WHERE id = ?", (i,)).fetchone() for i in (query, candidate)
    )
    return "good" if (qc, qk) == (cc, ck) else "close" if qc == cc else "wrong"


def judge_top_k(db, method: str, queries: list[str], rater: str, k: int = 10, grade=None) -> int:
    """Judge `method`'s top k of each query as `grade(db, query, candidate)` says (type + colour by
    default: good or wrong); return how many verdicts were stored."""
    from core.curation.labels import Query, add_label
    from core.search.queries import search_many
    from core.search.space import open_space

    count = 0
    for query, hits in search_many(open_space(db, method), queries, k):
        for hit in hits:
            verdict = (
                grade(db, query, hit.item_id)
                if grade
                else ("good" if true_grade(db, query, hit.item_id) == "good" else "wrong")
            )
            add_label(db, Query.item(query), hit.item_id, method, hit.rank, verdict == "good", rater, grade=verdict)
            count += 1
    return count


# the header of the demo's product CSV (styles.csv), and a row of it with the id left to fill in
STYLES_HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
STYLES_ROW = "{},Men,Apparel,Topwear,Tshirts,Blue,Fall,2011,Casual,Blue tee"


def sha(path: Path) -> str:
    """The file's SHA-256: to show a command left it byte for byte as it was."""
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_rows(path: Path, encoding: str = "utf-8-sig") -> list[dict]:
    """A CSV file's rows, by column name."""
    import csv

    with open(path, newline="", encoding=encoding) as handle:
        return list(csv.DictReader(handle))


# cells a spreadsheet would run as formulas (and one already quoted)
FORMULAS = ["=1+1", "+", "-", "@SUM(1)", "\tx", "'=already quoted"]


def disk_full_after(db, pages: int) -> None:
    """Let the catalog grow by `pages` pages only: SQLite then fails with "database or disk is full"."""
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0] + pages}")


def encoded(fmt: str, mode: str = "RGB", **options) -> bytes:
    """A small red picture saved in the Pillow format `fmt`."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, (40, 30), "red").save(buffer, fmt, **options)
    return buffer.getvalue()


def malformed_exif_jpeg() -> bytes:
    """A real JPEG whose EXIF says "rotate" and holds a tag of the wrong type: Pillow's
    exif_transpose raises struct.error re-writing it."""
    import struct

    jpeg = encoded("JPEG")
    entries = struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">HHI4s", 0x0203, 2, 4, b"abc\0")
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 2) + entries + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def styles_csv(tmp_path: Path, header: str, rows: list[str], name: str = "h.csv", encoding: str = "utf-8") -> Path:
    """A product CSV of these lines, written under `tmp_path`."""
    path = tmp_path / name
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding=encoding)
    return path


def one_line(done: subprocess.CompletedProcess) -> str:
    """The command failed (exit 2) with exactly one line on stderr and no traceback; that line."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="Debian chromium / chromium-driver not installed"
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_app(
    db_path: Path,
    folder: Path,
    host: str = "127.0.0.1",
    env: dict | None = None,
    port: int | None = None,
    secrets: Path | None = None,
) -> Iterator[str]:
    """`streamlit run streamlit_app/Home.py` on `host` and `port` (default: a free one), on the catalog at
    `db_path`, with `env` added (`LOOKALIKE_AUTH=proxy`, ...) and Streamlit's secrets from `secrets` (a
    secrets.toml: the OIDC settings); yields its loopback URL once it answers, and stops it after. Its
    log is `folder`/streamlit.log."""
    import time
    import urllib.request

    port = port or free_port()
    log = open(folder / "streamlit.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(APP / "Home.py"),
            f"--server.address={host}",
            f"--server.port={port}",
            "--server.headless=true",
            *([f"--secrets.files={secrets}"] if secrets else []),
        ],
        cwd=ROOT,
        env={**os.environ, "LOOKALIKE_DB": str(db_path), **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not start: " + (folder / "streamlit.log").read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # a busy machine: a background job may still be winding down
            proc.kill()
            proc.wait(10)
        log.close()


def chromium(user_dir: Path, width: int = 1440, height: int = 900, headers: dict[str, str] | None = None):
    """A headless Chromium (selenium) whose page is `width` x `height` px; with `headers`, every request
    it makes (the app's WebSocket too) carries them, as a signing-in proxy adds them (`send_headers`).
    The caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        f"--user-data-dir={user_dir}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])  # the page itself gets width x height
    driver.set_page_load_timeout(60)
    if headers:
        send_headers(driver, headers)
    return driver


def send_headers(driver, headers: dict[str, str]) -> None:
    """From now on every request of `driver` carries `headers` (the DevTools protocol's
    Network.setExtraHTTPHeaders): the person a signing-in proxy would name."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})


APP_IDLE = "//*[@data-testid='stApp'][@data-test-connection-state='CONNECTED'][@data-test-script-state='notRunning']"


def wait_for(driver, xpath: str, timeout: float = 60):
    """The element at `xpath`, once it is there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.XPATH, xpath)))


def settle(driver, timeout: float = 60) -> None:
    """Wait until Streamlit has finished running the page script: the app's own script-run state
    (set at once when a widget asks for a rerun; the status widget only shows after a delay), seen
    idle twice in a row, then a moment for the browser to draw what the run sent."""
    import time

    from selenium.webdriver.support.ui import WebDriverWait

    def idle(d) -> bool:
        if not d.find_elements("xpath", APP_IDLE):
            return False
        time.sleep(0.1)
        return bool(d.find_elements("xpath", APP_IDLE))

    time.sleep(0.25)  # the server's word that a rerun started takes a moment on a busy machine
    WebDriverWait(driver, timeout, poll_frequency=0.1).until(idle)
    time.sleep(0.2)
