"""Similar-item CSV export: rows, filters, only-relevant, atomic writes, spreadsheet-friendly."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from core.curation.export import COLUMNS, export_similar
from core.curation.labels import Query, add_label
from core.files.output_path import header_bytes
from core.search.space import open_space

from helpers import ROOT


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
