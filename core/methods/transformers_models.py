"""Pretrained transformers through `transformers`: ViT, DINO, DINOv2, CLIP, FashionCLIP, BLIP-2.

Each loads with `from_pretrained` from a local folder (`<models>/<method>/`) or the Hugging Face
hub id (from the local cache when `HF_HUB_OFFLINE=1`). CLIP-family methods also embed text into
their image space (text-to-image search).

Photos are prepared as the checkpoint's image processor says (its resize, centre crop, mean and
std), but split like the CNNs' (`Pixels`): decode workers resize and crop in uint8 with Pillow,
and the model's side rescales and normalises (on its device, or inside the OpenVINO model).
That sends a quarter of float32's bytes through the decode pipe and Ray's blocks, and keeps
torch and transformers out of the decode workers. A processor this split cannot reproduce runs
whole in the workers, as before.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.catalog.db import Catalog
from core.methods import weights
from core.methods.base import TextExtractor
from core.methods.preprocess import Pixels
from core.methods.spec import MethodSpec
from core.methods.specs import CHECKPOINTS
from core.methods.torch_utils import TorchImageExtractor

log = logging.getLogger(__name__)


class HubTransformer(TorchImageExtractor):
    def load_model(self, catalog: Catalog | None) -> torch.nn.Module:
        from transformers import AutoModel

        self.checkpoint = CHECKPOINTS[self.spec.name]
        self.where, self.load_options = _where(self.spec.name, catalog)
        self.preprocess = preprocessing(self.spec, catalog)
        if self.checkpoint.pooling == "blip2":
            from transformers import Blip2VisionModelWithProjection

            return Blip2VisionModelWithProjection.from_pretrained(self.where, **self.load_options)
        return AutoModel.from_pretrained(self.where, **self.load_options)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        pooling = self.checkpoint.pooling
        if pooling == "clip":
            return _pooled(self.model.get_image_features(pixel_values=pixels))
        if pooling == "blip2":
            return self.model(pixel_values=pixels).image_embeds.mean(dim=1)
        if pooling == "pooler":
            return self.model(pixel_values=pixels).pooler_output
        return self.model(pixel_values=pixels).last_hidden_state[:, 0]


class HubClip(HubTransformer, TextExtractor):
    """A CLIP-family model: its text tower embeds words into the image space."""

    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        super().__init__(spec, catalog)
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.where, **self.load_options)

    def encode(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
        with torch.inference_mode(), self.placement.autocast():
            return _pooled(self.model.get_text_features(**batch)).float().cpu().numpy()


def _where(method: str, catalog: Catalog | None) -> tuple[str, dict]:
    """The folder or hub id a checkpoint loads from, and the `from_pretrained` options for it."""
    repo_id = CHECKPOINTS[method].repo_id
    where = weights.source(method, repo_id, catalog)
    if where is None:  # pragma: no cover - callers check availability first
        raise RuntimeError(weights.remedy(method, repo_id, catalog))
    return where, {"local_files_only": weights.offline() or where != repo_id}


def preprocessing(spec: MethodSpec, catalog: Catalog | None) -> Pixels | partial:
    """How a checkpoint's photos are prepared, from its image processor's config alone (no model weights).

    A `Pixels` (uint8 out; normalised on the model's side) when it reproduces the processor, else
    the processor itself (`pixel_values`: normalised float32 out).
    """
    from transformers import AutoImageProcessor

    where, options = _where(spec.name, catalog)
    processor = AutoImageProcessor.from_pretrained(where, **options)
    pixels = processor_pixels(processor)
    if pixels is None:
        log.info("%s: %s runs whole in the decode workers", spec.name, type(processor).__name__)
        return partial(pixel_values, processor=processor)  # picklable: decode processes
    return pixels


def _side(size, key: str) -> int | None:
    """A processor size entry (a dict or transformers' SizeDict)."""
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return int(value) if value else None


def processor_pixels(processor) -> Pixels | None:
    """The `Pixels` that reproduces a transformers image processor (resize to a square, or shortest
    edge + centre crop; rescale; normalise), or None when it does something else (padding, other
    sizes, an aspect-keeping resize without a crop). The rescale factor is folded into mean and std."""
    size = processor.size if processor.do_resize else None
    if size is None or getattr(processor, "do_pad", False):
        return None
    height, width, shortest = _side(size, "height"), _side(size, "width"), _side(size, "shortest_edge")
    crop = processor.crop_size if processor.do_center_crop else None
    crop_side = _side(crop, "height") if crop else None
    if crop and crop_side != _side(crop, "width"):
        return None
    if shortest and not _side(size, "longest_edge") and crop_side and crop_side <= shortest:
        side, shortest_edge = crop_side, shortest
    elif height and height == width and not shortest and (crop_side is None or crop_side == height):
        side, shortest_edge = height, None
    else:
        return None
    factor = 255 * (processor.rescale_factor if processor.do_rescale else 1.0)
    mean = processor.image_mean if processor.do_normalize else (0.0, 0.0, 0.0)
    std = processor.image_std if processor.do_normalize else (1.0, 1.0, 1.0)
    return Pixels(
        size=side,
        mean=tuple(float(m) / factor for m in _three(mean)),
        std=tuple(float(s) / factor for s in _three(std)),
        resample=Image.Resampling.BILINEAR if processor.resample is None else int(processor.resample),  # None: bilinear
        shortest_edge=shortest_edge,
    )


def _three(values) -> tuple[float, float, float]:
    """A per-channel mean or std (a processor may give one number for all three)."""
    return tuple(values) if isinstance(values, (list, tuple)) else (values,) * 3


def pixel_values(images: list[Image.Image], processor) -> np.ndarray:
    """A processor that `Pixels` cannot reproduce, run whole: normalised float32 NCHW NumPy."""
    return processor(images=[img.convert("RGB") for img in images], return_tensors="np")["pixel_values"]


def _pooled(output) -> torch.Tensor:
    """transformers 5 returns a model output from get_*_features; older versions a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def create(spec: MethodSpec, catalog: Catalog | None = None) -> HubTransformer:
    return (HubClip if CHECKPOINTS[spec.name].pooling == "clip" else HubTransformer)(spec, catalog)


def download(method: str, catalog: Catalog | None) -> Path:
    """Fetch a checkpoint from the hub (online) and save it in the method's local folder."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    checkpoint = CHECKPOINTS[method]
    folder = weights.local_dir(method, catalog)
    AutoModel.from_pretrained(checkpoint.repo_id).save_pretrained(folder)
    AutoImageProcessor.from_pretrained(checkpoint.repo_id).save_pretrained(folder)
    if checkpoint.pooling == "clip":
        AutoTokenizer.from_pretrained(checkpoint.repo_id).save_pretrained(folder)
    return folder
