"""ImageNet CNNs through timm: VGG16, ResNet50, Xception, EfficientNet-B0 (hub or local weights)."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image

from core import devices
from core.db import Catalog
from core.extractors import hub
from core.extractors.registry import MethodSpec, register
from core.extractors.torch_utils import l2_normalise, set_threads, to_array

ARCHS = {  # method -> (timm model name with pretrained tag, feature dim, description)
    "vgg16": ("vgg16.tv_in1k", 4096, "VGG16 (torchvision ImageNet weights), penultimate layer"),
    "resnet50": ("resnet50.tv_in1k", 2048, "ResNet50 (torchvision ImageNet weights), global pool"),
    "xception": ("legacy_xception.tf_in1k", 2048, "Xception (Keras ImageNet weights), global pool"),
    "efficientnet_b0": ("efficientnet_b0.ra_in1k", 1280, "EfficientNet-B0 (timm ImageNet weights), global pool"),
}


def hub_id(method: str) -> str:
    return f"timm/{ARCHS[method][0]}"


def load(method: str, catalog: Catalog | None) -> torch.nn.Module:
    """Create the timm model with pretrained weights from the local folder or the hub cache."""
    name = ARCHS[method][0]
    folder = hub.local_dir(method, catalog)
    if hub.has_weights(folder):
        file = next(folder / f for f in hub.WEIGHT_FILES if (folder / f).exists())
        model = timm.create_model(name, pretrained=True, num_classes=0,
                                  pretrained_cfg_overlay={"file": str(file)})
    else:
        model = timm.create_model(name, pretrained=True, num_classes=0)
    return model.eval().to(memory_format=torch.channels_last)


class TimmCNN:
    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        self.spec = spec
        set_threads()
        self.placement = devices.current()
        self.model = self.placement.prepare(load(spec.name, catalog), channels_last=True)
        cfg = self.model.pretrained_cfg
        self.size = int(cfg.get("input_size", (3, 224, 224))[-1])
        self.mean, self.std = tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225)))
        self.preprocess = partial(to_array, size=self.size, mean=self.mean, std=self.std)   # picklable

    def forward(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), self.placement.autocast():
            features = self.model(self.placement.tensor(batch, channels_last=True))
        return l2_normalise(features.float().cpu().numpy())

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.forward(self.preprocess(images))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError(f"{self.spec.name} embeds images, not text")


def download(method: str, catalog: Catalog | None) -> Path:
    """Fetch a method's weights from the hub (online) and save them in its local folder."""
    from safetensors.torch import save_file
    model = timm.create_model(ARCHS[method][0], pretrained=True)
    folder = hub.local_dir(method, catalog)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    return folder


def _availability(method: str):
    def check(catalog: Catalog | None) -> str | None:
        if hub.source(method, hub_id(method), catalog):
            return None
        return hub.remedy(method, hub_id(method), catalog)
    return check


for _method, (_name, _dim, _description) in ARCHS.items():
    register(MethodSpec(
        name=_method, version="1", kind="image", dim=_dim, metric="angular", family="cnn",
        description=_description, weights=f"Hugging Face hub {hub_id(_method)} (timm)",
        factory=TimmCNN, availability=_availability(_method),
    ))
