"""ImageNet CNNs through timm: VGG16, ResNet50, Xception, EfficientNet-B0 (hub or local weights)."""

from __future__ import annotations

from pathlib import Path

import timm
import torch

from core.catalog.db import Catalog
from core.methods import weights
from core.methods.preprocess import Pixels
from core.methods.spec import MethodSpec
from core.methods.specs import ARCHS
from core.methods.torch_utils import TorchImageExtractor


def load(method: str, catalog: Catalog | None) -> torch.nn.Module:
    """Create the timm model with pretrained weights from the local folder or the hub cache."""
    name = ARCHS[method][0]
    folder = weights.local_dir(method, catalog)
    if weights.has_weights(folder):
        file = next(folder / f for f in weights.WEIGHT_FILES if (folder / f).exists())
        return timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(file)})
    return timm.create_model(name, pretrained=True, num_classes=0)


def preprocessing(spec: MethodSpec, catalog: Catalog | None = None) -> Pixels:
    """The model's input size and normalisation, from timm's pretrained config (no weights loaded)."""
    found = timm.get_pretrained_cfg(ARCHS[spec.name][0])
    if found is None:
        raise ValueError(f"timm has no pretrained config for {ARCHS[spec.name][0]}")
    cfg = found.to_dict()
    return Pixels(
        size=int(cfg.get("input_size", (3, 224, 224))[-1]),
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
    )


class TimmCNN(TorchImageExtractor):
    channels_last = True

    def load_model(self, catalog: Catalog | None) -> torch.nn.Module:
        self.preprocess = preprocessing(self.spec, catalog)
        return load(self.spec.name, catalog)


def download(method: str, catalog: Catalog | None) -> Path:
    """Fetch a method's weights from the hub (online) and save them in its local folder."""
    from safetensors.torch import save_file

    model = timm.create_model(ARCHS[method][0], pretrained=True)
    folder = weights.local_dir(method, catalog)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    return folder
