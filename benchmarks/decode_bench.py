"""Decoding full-size photos: as before (full decode, float32) against now (JPEG draft decode, uint8).

    python benchmarks/decode_bench.py [--photos 400] [--repeats 3] [--write]

The 4,000 benchmark photos are 224x224, where decoding is cheap; real catalogues hold 1-2 MP
packshots, and shoppers upload phone photos. Two sets of full-size photos: the 21 shopper
photos of the shared data (JPEG, WebP, AVIF, up to 1440 px wide) and catalog photos upscaled to
1200x1600 JPEG (quality 90, written once to data/bench/fullsize/). For each, the default
method's preprocessing (224x224):

- before: the whole photo decoded, resized, normalised to float32 NCHW (602 KB a photo);
- now: a JPEG decoded at reduced size in the DCT (`PIL.Image.draft`, never below 224 px),
  resized, shipped as uint8 NHWC (151 KB a photo), normalised on the model's side (timed here
  with NumPy; on a GPU it runs there).

Reported: ms per photo on one core, bytes per photo through the decode pipe, and photos/s of
the decode pool in worker processes (one per core, as `embed` feeds a GPU). A/B interleaved in
the same run; the medians of `--repeats`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from common import FASHION, ROOT, SHARED, machine, write_section

FULLSIZE = ROOT / "data" / "bench" / "fullsize"
MEAN = STD = (0.5, 0.5, 0.5)


def upscaled(count: int) -> list[Path]:
    """`count` catalog photos upscaled to 1200x1600 JPEG (made once)."""
    from PIL import Image

    FULLSIZE.mkdir(parents=True, exist_ok=True)
    paths = []
    for source in sorted((FASHION / "images").glob("*.jpg"))[:count]:
        target = FULLSIZE / source.name
        if not target.exists():
            Image.open(source).convert("RGB").resize((1200, 1600), Image.BICUBIC).save(target, quality=90)
        paths.append(target)
    return paths


def preprocessings() -> dict:
    from functools import partial

    from core.methods.preprocess import Pixels, to_array

    return {"before": partial(to_array, size=224, mean=MEAN, std=STD), "now": Pixels(224, MEAN, STD)}


def one_core(paths: list[Path], preprocess) -> tuple[float, int]:
    """(ms per photo, bytes per photo) decoding and preprocessing one photo at a time in this process."""
    from core.engines.decode import decode_chunk
    from core.methods.preprocess import Pixels

    start = time.perf_counter()
    nbytes = 0
    for path in paths:
        _, batch, failures = decode_chunk([(str(path), None)], preprocess)
        assert not failures, failures
        nbytes += batch.nbytes
        if isinstance(preprocess, Pixels):
            preprocess.normalise(batch)  # the model's side, counted here
    return (time.perf_counter() - start) * 1000 / len(paths), nbytes // len(paths)


def pool(paths: list[Path], preprocess) -> float:
    """Photos/s of the decode pool in worker processes (started before the clock)."""
    from core.catalog.vectors import Pending
    from core.engines.decode import decoded_batches

    items = [Pending(p.stem, str(p), None, "") for p in paths]
    batches = [items[i : i + 64] for i in range(0, len(items), 64)]
    stream = decoded_batches(batches, preprocess, processes=True)
    first = next(stream)  # workers started and warm
    start = time.perf_counter()
    done = sum(len(good) for good, _, _ in stream)
    return done / (time.perf_counter() - start) if done else float(len(first[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=400, help="upscaled catalog photos")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="put the table in docs/benchmarks.md")
    args = parser.parse_args()
    if not FASHION.is_dir():
        raise SystemExit(f"{FASHION} is absent: this benchmark needs the shared data set")
    from core.engines.decode import cores

    sets = {
        "shopper photos (21; JPEG, WebP, AVIF; up to 1440 px)": sorted((SHARED / "query-photos").iterdir()) * 5,
        f"catalog photos upscaled to 1200x1600 JPEG ({args.photos})": upscaled(args.photos),
    }
    rows = []
    for label, paths in sets.items():
        times = {name: [] for name in preprocessings()}
        rates = {name: [] for name in preprocessings()}
        sizes = {}
        for _ in range(args.repeats):
            for name, preprocess in preprocessings().items():
                ms, sizes[name] = one_core(paths[:100], preprocess)
                times[name].append(ms)
                rates[name].append(pool(paths, preprocess))
        ms = {name: statistics.median(v) for name, v in times.items()}
        rate = {name: statistics.median(v) for name, v in rates.items()}
        for name in preprocessings():
            rows.append(f"| {label} | {name} | {ms[name]:.1f} | {sizes[name] / 1024:.0f} | {rate[name]:.0f} |")
        rows.append(
            f"| {label} | gain | {ms['before'] / ms['now']:.1f}x | {sizes['before'] / sizes['now']:.0f}x smaller "
            f"| {rate['now'] / rate['before']:.1f}x |"
        )
        print("\n".join(rows[-3:]), flush=True)
    body = "\n".join(
        [
            "## Decoding full-size photos",
            "",
            f"`python benchmarks/decode_bench.py --photos {args.photos} --repeats {args.repeats}` on {machine()} "
            f"(a shared machine: the ratios, measured A/B in the same run, are what to read).",
            "The default's preprocessing to 224x224: *before* decodes the whole photo and ships float32 NCHW;",
            "*now* decodes a JPEG reduced in the DCT (`Image.draft`, never below 224 px) and ships uint8 NHWC,",
            "normalised on the model's side (counted in the one-core time). WebP and AVIF decode at full size",
            f"either way. Pool: the decode processes (one per core, {cores()} here) as `embed` feeds a GPU.",
            "",
            "| photos | decode | ms a photo, one core | KB a photo through the pipe | pool photos/s |",
            "|---|---|---:|---:|---:|",
            *rows,
        ]
    )
    print(body)
    if args.write:
        write_section("decode-fullsize", body)


if __name__ == "__main__":
    main()
