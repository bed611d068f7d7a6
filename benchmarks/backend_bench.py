"""`embed_bench.py --backends`: the CPU backends side by side, in one run, on the same photos.

- Whole command: `python -m core embed --limit N` of the default with `LOOKALIKE_BACKEND=openvino`
  against `LOOKALIKE_BACKEND=onnx`, each a subprocess timed by its wall clock (start-up included),
  alternating, median of the repeats (conversions done before).
- Model only and end to end, for the default (real weights) and ViT-B/16, DINOv2-B and CLIP
  ViT-B/32 (random weights, built from their configurations: speed does not depend on them), each
  on PyTorch float32, ONNX Runtime (the default only) and OpenVINO float32 and bfloat16; cosine of
  each photo's vector to the float32 reference (ONNX Runtime for the default, PyTorch otherwise).
- Decoding: one thread, photos/s, catalog-size (224 px) photos and full-size ones (catalog photos
  upscaled to 1200 x 1600), with and without JPEG draft decoding, and OpenCV's reduced decode.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gpu_bench import ARCHITECTURES, RANDOM_MODELS, random_weights

from common import FASHION, ROOT, machine, write_section

DEFAULT = "efficientnet_lite0"
VARIANTS = [  # label, backend, precision
    ("PyTorch fp32", "torch", "fp32"),
    ("ONNX Runtime fp32", "onnx", "fp32"),
    ("OpenVINO fp32", "openvino", "fp32"),
    ("OpenVINO auto (bf16 here)", "openvino", "auto"),
]
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu() -> str:
    """The CPU's model name, the flags that matter here, and what OpenVINO sees."""
    name, flags = "unknown CPU", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            name = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    from core.methods import openvino_cpu

    found = ", ".join(f for f in FLAGS if f in flags) or "none of " + ", ".join(FLAGS)
    return f"{name}; flags: {found}; OpenVINO {openvino_cpu.version()} capabilities: {', '.join(openvino_cpu.capabilities())}"


def photos(n: int) -> list[Path]:
    return sorted((FASHION / "images").glob("*.jpg"), key=lambda p: p.stem)[:n]


def model_only(db: Path, method: str, images: int, seconds: float, out: Path) -> dict:
    """In the child: images/s of `embed_batch` on preprocessed photos (no decoding); vectors saved to `out`."""
    from core.catalog.db import open_catalog
    from core.catalog.images import load_rgb
    from core.methods import create_extractor

    start = time.perf_counter()
    extractor = create_extractor(method, open_catalog(db))
    load_s = time.perf_counter() - start
    batch = extractor.preprocess([load_rgb(p) for p in photos(images)])
    extractor.embed_batch(batch[:2])  # warm-up
    start, done = time.perf_counter(), 0
    while done == 0 or time.perf_counter() - start < seconds:
        vectors = extractor.embed_batch(batch)
        done += len(batch)
    np.save(out, vectors)
    rate = done / (time.perf_counter() - start)
    return {"rate": rate, "load_s": load_s, "backend": extractor.backend, "precision": extractor.precision}


def variants(method: str) -> list[tuple[str, str, str]]:
    return [v for v in VARIANTS if v[1] != "onnx" or method == DEFAULT]


def env_for(method: str, backend: str) -> dict:
    env = {"LOOKALIKE_BACKEND": backend}
    if method != DEFAULT:
        random_weights(method)
        env["LOOKALIKE_MODELS"] = str(RANDOM_MODELS)
    return env


def cosine(a: np.ndarray, b: np.ndarray) -> str:
    values = (a * b).sum(axis=1)
    return f"{values.min():.4f} / {values.mean():.5f}"


def model_rows(args: argparse.Namespace, run_child: Callable, folder: Path) -> list[str]:
    """Model only and end to end, every architecture x backend; ratios to PyTorch fp32 in the same run."""
    rows = []
    for method, label in ARCHITECTURES.items():
        if args.methods and method not in args.methods.split(","):
            continue
        few = method != DEFAULT
        images, e2e_images = (16, args.hub_images) if few else (64, args.images)
        reference, torch_rate, torch_e2e = None, None, None
        for name, backend, precision in variants(method):
            env = env_for(method, backend)
            out = folder / f"{method}-{backend}-{precision}.npy"
            flags = ("--model-only", str(out), "--ov-precision", precision, "--seconds", "3" if few else "5")
            fast = run_child(args.db, method, images, None, env, flags=flags)
            e2e = run_child(args.db, method, e2e_images, None, env, flags=("--ov-precision", precision))
            rate = e2e["images"] / e2e["seconds"]
            vectors = np.load(out)
            reference = vectors if reference is None else reference
            torch_rate, torch_e2e = torch_rate or fast["rate"], torch_e2e or rate
            row = (
                f"| {label} | {name} ({fast['backend']}, {fast['precision']}) | {fast['rate']:.1f} "
                f"| {fast['rate'] / torch_rate:.1f}x | {rate:.1f} | {rate / torch_e2e:.1f}x | {e2e['load_s']:.1f} "
                f"| {cosine(vectors, reference)} |"
            )
            print(row, flush=True)
            rows.append(row)
    return rows


def whole_commands(db: Path, images: int, repeats: int) -> list[str]:
    """`python -m core embed --limit N` (the default), OpenVINO against ONNX Runtime, start-up included."""
    from core.catalog.db import open_catalog

    catalog = open_catalog(db)
    command = [sys.executable, "-m", "core", "embed", "--db", str(db), "--limit", str(images), "--json"]
    timings: dict[str, list[float]] = {"openvino": [], "onnx": []}
    for _ in range(repeats):
        for backend in timings:
            catalog.execute("DELETE FROM embeddings WHERE method = ?", (DEFAULT,))
            catalog.conn.commit()
            start = time.perf_counter()
            done = subprocess.run(
                command,
                cwd=ROOT,
                capture_output=True,
                text=True,
                env={**os.environ, "TQDM_DISABLE": "1", "LOOKALIKE_BACKEND": backend},
            )
            if done.returncode:
                raise SystemExit(f"embed ({backend}) failed:\n{done.stderr[-2000:]}")
            timings[backend].append(time.perf_counter() - start)
    onnx = statistics.median(timings["onnx"])
    rows = []
    for backend, label in (("openvino", "OpenVINO (auto: bf16 here)"), ("onnx", "ONNX Runtime fp32")):
        wall = statistics.median(timings[backend])
        rows.append(
            f"| `LOOKALIKE_BACKEND={backend}` {label} | {wall:.1f} | {images / wall:.1f} | {onnx / wall:.2f}x |"
        )
        print(rows[-1], flush=True)
    return rows


def decode_rows(images: int) -> list[str]:
    """Photos/s of decode + resize to 224 x 224 uint8 on one thread: Pillow (with and without draft), OpenCV."""
    import cv2
    from PIL import Image

    from core.catalog.images import load_rgb
    from core.methods.preprocess import Pixels

    pixels = Pixels(224, (0.5,) * 3, (0.5,) * 3)
    small = [p.read_bytes() for p in photos(images)]
    large = []
    for data in small[:40]:
        buffer = io.BytesIO()
        Image.open(io.BytesIO(data)).resize((1200, 1600), Image.BICUBIC).save(buffer, "JPEG", quality=90)
        large.append(buffer.getvalue())

    def opencv(data: bytes, flag: int) -> np.ndarray:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        return cv2.resize(bgr, (224, 224), interpolation=cv2.INTER_AREA)[:, :, ::-1]

    ways = {
        "Pillow, full decode": lambda d: pixels([load_rgb(d)]),
        "Pillow, draft decode (shipped)": lambda d: pixels([load_rgb(d, 224)]),
        "OpenCV, full decode": lambda d: opencv(d, cv2.IMREAD_COLOR),
        "OpenCV, IMREAD_REDUCED_COLOR_4": lambda d: opencv(d, cv2.IMREAD_REDUCED_COLOR_4),
    }
    rows = []
    for label, datas in (
        (f"catalog photos (224 px), {len(small)}", small),
        (f"1200 x 1600 JPEGs, {len(large)}", large),
    ):
        for way, run in ways.items():
            if "REDUCED" in way and datas is small:
                continue  # a 224-px photo has nothing to reduce
            start = time.perf_counter()
            for data in datas:
                run(data)
            rows.append(f"| {label} | {way} | {len(datas) / (time.perf_counter() - start):.0f} |")
            print(rows[-1], flush=True)
    return rows


def backend_runs(args: argparse.Namespace, run_child: Callable) -> None:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        models = model_rows(args, run_child, Path(tmp))
    if args.methods:  # some models only (rows printed above): the section keeps its whole run
        return
    commands = whole_commands(args.db, args.commands_images, args.repeats)
    decoding = decode_rows(args.images)
    body = "\n".join(
        [
            "## CPU backends: OpenVINO, ONNX Runtime, PyTorch",
            "",
            f"`python benchmarks/embed_bench.py --backends` on {machine()}: {cpu()}.",
            f"Load average {load:.1f} before the runs ({'a quiet machine' if load < 1.5 else 'the machine was shared with other jobs'});",
            "the ratios come from the same run and the same photos.",
            "",
            f"Whole command, start-up included: `python -m core embed --limit {args.commands_images}` of the default,",
            f"one process per run, wall clock, median of {args.repeats} alternating runs (conversion done before).",
            "",
            "| command | wall s | photos/s | vs ONNX Runtime |",
            "|---|---:|---:|---:|",
            *commands,
            "",
            "Per model: model only = `embed_batch` on preprocessed photos (64 for the default, 16 for the",
            f"transformers); end to end = `embed_catalog` on {args.images} photos (default) or {args.hub_images}",
            "(transformers), decoding included; load s = creating the extractor (conversion already cached).",
            "Cosine min / mean: each photo's vector against the first row's (float32). ViT-B/16, DINOv2-B",
            "and CLIP ViT-B/32 have random weights (speed does not depend on them; their cosines say",
            "nothing about trained weights).",
            "",
            "| model | backend (ran as) | model only photos/s | vs PyTorch | end to end photos/s | vs PyTorch "
            "| load s | cosine min / mean |",
            "|---|---|---:|---:|---:|---:|---:|---|",
            *models,
            "",
            "Decoding and resizing to 224 x 224 uint8 on one thread:",
            "",
            "| photos | how | photos/s |",
            "|---|---|---:|",
            *decoding,
        ]
    )
    print(body)
    if args.write:
        write_section("embed-backends", body)
