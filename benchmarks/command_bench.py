"""The default's whole `embed` command, cold and warm, and its precisions (embed_bench.py --first-embed / --int8).

- First embed: `python -m core embed --limit N` (one process, wall clock, start-up included) in
  three states: cold (an empty user-wide cache: ONNX export, OpenVINO conversion and compile in
  the run), a new catalog (its own empty models folder; the user-wide cache holds the conversion)
  and warm (the same catalog embedding again). For N above the 4,000 shared photos, the photos
  are repeated under new ids (`<id>-r<k>`, hard links to the same files).
- int8: the product's `embed --precision int8` on the 4,000 shared photos (quantised on 300 of
  them, checked on 200 others: its verdict line), then fp32, bf16 and int8 (the int8 model used
  whatever its verdict, for measurement) model only and end to end, with each photo's cosine to
  fp32 and type P@10 over the 4,000 photos.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import FASHION, ROOT

DEFAULT = "efficientnet_lite0"


def photos_catalog(folder: Path, photos: int) -> Path:
    """A catalog (no vectors) of `photos` photos: the shared ones, repeated under new ids past 4,000."""
    from core.catalog.db import open_catalog
    from core.catalog.importers import import_csv

    db_path = folder / f"photos-{photos}.db"
    if db_path.exists():
        return db_path
    rows = list(csv.DictReader(open(FASHION / "styles.csv", encoding="utf-8")))
    images = folder / f"photos-{photos}-images"
    images.mkdir(parents=True, exist_ok=True)
    made = []
    for n in range(photos):
        row = dict(rows[n % len(rows)])
        source = FASHION / "images" / f"{row['id']}.jpg"
        if n >= len(rows):
            row["id"] = f"{row['id']}-r{n // len(rows)}"
        target = images / f"{row['id']}.jpg"
        if not target.exists():
            os.link(source, target)
        made.append(row)
    with open(folder / f"photos-{photos}.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(made)
    db = open_catalog(db_path)
    import_csv(db, folder / f"photos-{photos}.csv", images, progress=False)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    return db_path


def embed_command(db: Path, photos: int, env: dict) -> float:
    """Wall seconds of `python -m core embed --limit photos` (checked to embed them all)."""
    command = [sys.executable, "-m", "core", "embed", "--db", str(db), "--limit", str(photos), "--json"]
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env, "TQDM_DISABLE": "1"}
    )
    wall = time.perf_counter() - start
    if done.returncode or json.loads(done.stdout)["embedded"] != photos:
        raise SystemExit(f"embed failed:\n{done.stdout[-1000:]}\n{done.stderr[-2000:]}")
    return wall


def fresh_copy(template: Path, folder: Path) -> Path:
    """A new catalog folder holding a copy of `template` (no vectors, no models folder)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(template, folder / "shop.db")
    return folder / "shop.db"


def first_embed(folder: Path, photos: int, repeats: int) -> list[str]:
    """Rows: cold, new catalog (median of `repeats`), warm (median of `repeats`), photos/s and vs warm."""
    template = photos_catalog(folder, photos)
    for path in (FASHION / "images").glob("*.jpg"):
        path.read_bytes()  # the page cache holds the photos in every state
    base = {"LOOKALIKE_BACKEND": "openvino"}
    with tempfile.TemporaryDirectory(dir=folder) as empty:
        cold = fresh_copy(template, folder / "cold")
        cold_s = [
            embed_command(
                cold, photos, {**base, "LOOKALIKE_CACHE": empty, "LOOKALIKE_MODELS": str(cold.parent / "models")}
            )
        ]
    warm = fresh_copy(template, folder / "warm")
    warm_env = {**base, "LOOKALIKE_MODELS": str(warm.parent / "models")}
    embed_command(warm, photos, warm_env)  # the user-wide cache holds the conversion from here on
    new_s, warm_s = [], []
    for n in range(repeats):
        new = fresh_copy(template, folder / f"new-{n}")
        new_s.append(embed_command(new, photos, {**base, "LOOKALIKE_MODELS": str(new.parent / "models")}))
        drop_vectors(warm)
        warm_s.append(embed_command(warm, photos, warm_env))
    reference = statistics.median(warm_s)
    rows = []
    for label, runs in (
        ("cold: empty user-wide cache (export, conversion, compile)", cold_s),
        ("first embed in a new catalog (conversion in the user-wide cache)", new_s),
        ("warm: the same catalog again", warm_s),
    ):
        wall = statistics.median(runs)
        rows.append(
            f"| {photos:,} | {label} | {len(runs)} | {wall:.1f} | {photos / wall:.0f} | {wall / reference:.2f}x |"
        )
        print(rows[-1], flush=True)
    return rows


def drop_vectors(db_path: Path) -> None:
    from core.catalog.db import open_catalog

    db = open_catalog(db_path)
    db.execute("DELETE FROM embeddings WHERE method = ?", (DEFAULT,))
    db.conn.commit()
    db.conn.close()


def precisions(db_path: Path, end_to_end: int, seconds: float) -> list[str]:
    """fp32, bf16 and int8 of the default: model only, end to end, cosine to fp32 and type P@10."""
    import numpy as np

    from core.catalog.db import open_catalog
    from core.catalog.images import load_rgb
    from core.engines.embed import embed_catalog
    from core.methods import backends, create_extractor, openvino_int8

    db = open_catalog(db_path)
    rows = db.execute(
        "SELECT images.path, items.category FROM images JOIN items ON items.id = images.item_id ORDER BY items.id"
    ).fetchall()
    types = {r["id"]: r["articleType"] for r in csv.DictReader(open(FASHION / "styles.csv", encoding="utf-8"))}
    labels = np.array([types[Path(path).stem] for path, _ in rows])
    openvino_int8.MIN_COSINE, openvino_int8.MAX_P10_DROP = -1.0, 1.0  # measured here, whatever the verdict
    vectors, lines = {}, []
    for precision in ("fp32", "auto", "int8"):
        backends.select_precision(precision)
        extractor = create_extractor(DEFAULT, db)
        batch = extractor.preprocess([load_rgb(path, extractor.preprocess.draft) for path, _ in rows[:256]])
        extractor.embed_batch(batch)
        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            extractor.embed_batch(batch)
            done += len(batch)
        model_only = done / (time.perf_counter() - start)
        found = []
        for n in range(0, len(rows), 256):
            found.append(
                extractor.embed_batch(
                    extractor.preprocess([load_rgb(p, extractor.preprocess.draft) for p, _ in rows[n : n + 256]])
                )
            )
        vectors[extractor.precision] = np.concatenate(found)
        db.execute("DELETE FROM embeddings WHERE method = ?", (DEFAULT,))
        db.conn.commit()
        report = embed_catalog(db, DEFAULT, limit=end_to_end, progress=False, extractor=extractor)
        cosine = (vectors[extractor.precision] * vectors["fp32"]).sum(axis=1)
        lines.append(
            f"| {extractor.precision} | {model_only:.0f} | {report.rate:.0f} | {cosine.min():.4f} | {cosine.mean():.4f} "
            f"| {np.percentile(cosine, 1):.4f} | {openvino_int8.p10(vectors[extractor.precision], labels):.4f} |"
        )
        print(lines[-1], flush=True)
    return lines


def product_verdict(db_path: Path) -> str:
    """The product's own `embed --precision int8` line on this catalog (quantise, check, decide)."""
    drop_vectors(db_path)
    command = [sys.executable, "-m", "core", "embed", "--db", str(db_path), "--limit", "8", "--precision", "int8"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    return (done.stdout.strip() or done.stderr.strip()).splitlines()[-1]  # the result line, not progress bars
