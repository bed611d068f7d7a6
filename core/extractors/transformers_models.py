"""Pretrained transformers through `transformers`: ViT, DINO, DINOv2, CLIP, FashionCLIP, BLIP-2.

Each loads with `from_pretrained` from a local folder (`<models>/<method>/`) or the Hugging Face
hub id (from the local cache when `HF_HUB_OFFLINE=1`). CLIP-family methods also embed text into
their image space (text-to-image search).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core import devices
from core.db import Catalog
from core.extractors import hub
from core.extractors.registry import MethodSpec, register
from core.extractors.torch_utils import l2_normalise, set_threads


@dataclass(frozen=True)
class Checkpoint:
    repo_id: str
    dim: int
    pooling: str          # "cls", "pooler", "clip", "blip2"
    description: str


CHECKPOINTS = {
    "vit": Checkpoint("google/vit-base-patch16-224-in21k", 768, "cls", "ViT-B/16 (ImageNet-21k) CLS token"),
    "dino": Checkpoint("facebook/dino-vitb16", 768, "cls", "DINO ViT-B/16 self-supervised CLS token"),
    "dinov2": Checkpoint("facebook/dinov2-small", 384, "pooler", "DINOv2 ViT-S/14 CLS token"),
    "dinov2_base": Checkpoint("facebook/dinov2-base", 768, "pooler", "DINOv2 ViT-B/14 CLS token"),
    "clip": Checkpoint("openai/clip-vit-base-patch32", 512, "clip", "CLIP ViT-B/32 image tower (text tower for text search)"),
    "fashion_clip": Checkpoint("patrickjohncyh/fashion-clip", 512, "clip", "FashionCLIP (CLIP tuned on fashion products)"),
    "blip2": Checkpoint("Salesforce/blip2-itm-vit-g", 256, "blip2", "BLIP-2 ViT-g + Q-Former projected query features"),
}


class HubTransformer:
    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        from transformers import AutoImageProcessor, AutoModel
        self.spec = spec
        self.checkpoint = CHECKPOINTS[spec.name]
        where = hub.source(spec.name, self.checkpoint.repo_id, catalog)
        if where is None:  # pragma: no cover - create_extractor checks availability first
            raise RuntimeError(hub.remedy(spec.name, self.checkpoint.repo_id, catalog))
        set_threads()
        kwargs = {"local_files_only": hub.offline() or where != self.checkpoint.repo_id}
        self.processor = AutoImageProcessor.from_pretrained(where, **kwargs)
        if self.checkpoint.pooling == "blip2":
            from transformers import Blip2VisionModelWithProjection
            self.model = Blip2VisionModelWithProjection.from_pretrained(where, **kwargs)
        else:
            self.model = AutoModel.from_pretrained(where, **kwargs)
        self.placement = devices.current()
        self.model = self.placement.prepare(self.model)
        self.preprocess = partial(pixel_values, processor=self.processor)   # picklable: decode processes
        self.tokenizer = None
        if self.checkpoint.pooling == "clip":
            from transformers import AutoTokenizer
            self.tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        pixels = self.placement.tensor(batch)
        with torch.inference_mode(), self.placement.autocast():
            pooling = self.checkpoint.pooling
            if pooling == "clip":
                features = _pooled(self.model.get_image_features(pixel_values=pixels))
            elif pooling == "blip2":
                features = self.model(pixel_values=pixels).image_embeds.mean(dim=1)
            elif pooling == "pooler":
                features = self.model(pixel_values=pixels).pooler_output
            else:
                features = self.model(pixel_values=pixels).last_hidden_state[:, 0]
        return l2_normalise(features.float().cpu().numpy())

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.forward(self.preprocess(images))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if self.tokenizer is None:
            raise NotImplementedError(f"{self.spec.name} has no text tower")
        batch = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(self.placement.device)
        with torch.inference_mode(), self.placement.autocast():
            features = _pooled(self.model.get_text_features(**batch))
        return l2_normalise(features.float().cpu().numpy())


def pixel_values(images: list[Image.Image], processor) -> np.ndarray:
    """The checkpoint's own preprocessing, as NumPy (runs in decode workers; torch stays on the model's thread)."""
    return processor(images=[img.convert("RGB") for img in images], return_tensors="np")["pixel_values"]


def _pooled(output) -> torch.Tensor:
    """transformers 5 returns a model output from get_*_features; older versions a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def download(method: str, catalog: Catalog | None) -> Path:
    """Fetch a checkpoint from the hub (online) and save it in the method's local folder."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
    checkpoint = CHECKPOINTS[method]
    folder = hub.local_dir(method, catalog)
    AutoModel.from_pretrained(checkpoint.repo_id).save_pretrained(folder)
    AutoImageProcessor.from_pretrained(checkpoint.repo_id).save_pretrained(folder)
    if checkpoint.pooling == "clip":
        AutoTokenizer.from_pretrained(checkpoint.repo_id).save_pretrained(folder)
    return folder


def _availability(method: str):
    def check(catalog: Catalog | None) -> str | None:
        repo = CHECKPOINTS[method].repo_id
        return None if hub.source(method, repo, catalog) else hub.remedy(method, repo, catalog)
    return check


for _method, _cp in CHECKPOINTS.items():
    register(MethodSpec(
        name=_method, version="1", kind="image", dim=_cp.dim, metric="angular", family="transformer",
        description=_cp.description, weights=f"Hugging Face hub {_cp.repo_id}",
        factory=HubTransformer, availability=_availability(_method), text_query=_cp.pooling == "clip",
    ))
