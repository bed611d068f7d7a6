"""Pretrained transformers through `transformers`: ViT, DINO, DINOv2, CLIP, FashionCLIP, BLIP-2.

Each loads with `from_pretrained` from a local folder (`<models>/<method>/`) or the Hugging Face
hub id (from the local cache when `HF_HUB_OFFLINE=1`). CLIP-family methods also embed text into
their image space (text-to-image search).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.catalog.db import Catalog
from core.methods import weights
from core.methods.base import TextExtractor
from core.methods.spec import MethodSpec
from core.methods.specs import CHECKPOINTS
from core.methods.torch_utils import TorchImageExtractor


class HubTransformer(TorchImageExtractor):
    def load_model(self, catalog: Catalog | None) -> torch.nn.Module:
        from transformers import AutoImageProcessor, AutoModel

        self.checkpoint = CHECKPOINTS[self.spec.name]
        where = weights.source(self.spec.name, self.checkpoint.repo_id, catalog)
        if where is None:  # pragma: no cover - create_extractor checks availability first
            raise RuntimeError(weights.remedy(self.spec.name, self.checkpoint.repo_id, catalog))
        self.load_options = {"local_files_only": weights.offline() or where != self.checkpoint.repo_id}
        self.where = where
        self.processor = AutoImageProcessor.from_pretrained(where, **self.load_options)
        self.preprocess = partial(pixel_values, processor=self.processor)  # picklable: decode processes
        if self.checkpoint.pooling == "blip2":
            from transformers import Blip2VisionModelWithProjection

            return Blip2VisionModelWithProjection.from_pretrained(where, **self.load_options)
        return AutoModel.from_pretrained(where, **self.load_options)

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


def pixel_values(images: list[Image.Image], processor) -> np.ndarray:
    """The checkpoint's own preprocessing, as NumPy (runs in decode workers; torch stays on the model's thread)."""
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
