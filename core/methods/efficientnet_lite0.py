"""EfficientNet-Lite0 as every backend runs it: input size, normalisation, half precision, preprocessing.

The backends (OpenVINO and ONNX Runtime in efficientnet.py, PyTorch in efficientnet_torch.py) import these, so
they agree by construction and neither imports the other's module for them.
"""

from __future__ import annotations

from core.catalog.db import Catalog
from core.methods.preprocess import Pixels
from core.methods.spec import MethodSpec

MEAN = STD = (0.5, 0.5, 0.5)
SIZE = 224
# On a GPU: bfloat16 moves 256 photos' vectors to cosine 0.9974 (min) of float32, float16 to
# 0.99998; ReLU6 keeps every activation far inside float16's range.
HALF = "float16"

PIXELS = Pixels(SIZE, MEAN, STD)  # uint8 from the decoders; normalised on the model's side


def preprocessing(spec: MethodSpec, catalog: Catalog | None = None) -> Pixels:
    """The registry's way to PIXELS (every backend's preprocessing), with no model loaded."""
    return PIXELS
