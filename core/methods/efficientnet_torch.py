"""EfficientNet-Lite0 in PyTorch (timm): the fallback backend, and the source of the ONNX export."""

from __future__ import annotations

from pathlib import Path

import timm
import torch

from core.catalog.db import Catalog
from core.methods import weights
from core.methods.efficientnet_lite0 import HALF, PIXELS, SIZE
from core.methods.torch_utils import TorchImageExtractor


def load_model() -> torch.nn.Module:
    """timm's tf_efficientnet_lite0 with the package's 296 tensors loaded by position."""
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    source = torch.load(weights.efficientnet_lite0_file(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"EfficientNet-Lite0 weights have {len(source)} tensors, expected {len(target)}")
    mapped = {}
    for (key, tensor), (source_key, value) in zip(target.items(), source.items()):
        if tensor.shape != value.shape:
            raise RuntimeError(f"shape mismatch: {source_key} {tuple(value.shape)} -> {key} {tuple(tensor.shape)}")
        mapped[key] = value
    model.load_state_dict(mapped)
    model.reset_classifier(0)  # type: ignore[operator]  # timm: create_model says nn.Module; EfficientNet has it
    return model.eval()


def export_onnx(path: Path) -> None:
    """Write the model as ONNX (dynamic batch) to `path`."""
    torch.onnx.export(
        load_model(),
        (torch.zeros(1, 3, SIZE, SIZE),),
        str(path),
        input_names=["pixels"],
        output_names=["features"],
        dynamic_axes={"pixels": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


class EfficientNetLite0Torch(TorchImageExtractor):
    channels_last = True
    half = HALF
    preprocess = PIXELS

    def load_model(self, catalog: Catalog | None) -> torch.nn.Module:
        return load_model()
