"""Shared pieces for torch-based extractors: threads, the device, and the image-extractor base.

On the CPU with the OpenVINO backend (core/methods/backends.py), the module is converted and
compiled by OpenVINO once loaded (openvino_model.py), and that runs the photos; PyTorch keeps the
module for anything else (CLIP's text tower). Only extractors import this module (it imports
torch); commands that need no model never do.
"""

from __future__ import annotations

import hashlib
import logging
from abc import abstractmethod

import numpy as np
import torch
from PIL import Image

from core.catalog.db import Catalog
from core.methods import backends, devices
from core.methods.base import ImageExtractor
from core.methods.preprocess import Pixels
from core.methods.spec import MethodSpec
from core.settings import SettingError, settings

log = logging.getLogger(__name__)


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 (first 12 hex digits) of a module's state: names and bytes, in order."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:12]


class Features(torch.nn.Module):
    """A module whose forward is an extractor's `features` (pooling included), for conversion."""

    def __init__(self, extractor: TorchImageExtractor):
        super().__init__()
        self.model = extractor.model  # registered: its weights trace as parameters
        self.features = extractor.features

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.features(pixels)


def set_threads() -> None:
    """Intra-op threads for a model: `$LOOKALIKE_THREADS`, else every core (2 on the reference machine)."""
    torch.set_num_threads(settings().threads)


class TorchImageExtractor(ImageExtractor):
    """An image extractor whose model is a torch module.

    Subclasses build the module in `load_model` and may override `features` (default: the
    module's output). `self.placement` (core.methods.devices) says where the module and every batch
    live and which precision to autocast to. Batches come from `preprocess` as NumPy and become
    tensors here, on the model's thread: a torch op in a decode thread would start another
    OpenMP pool that spins against the model's. A `Pixels` preprocessing sends uint8 NHWC,
    normalised here on the model's device.
    """

    channels_last = False  # convolutional models run faster in channels-last layout
    half: str | None = None  # the model's own half precision on a GPU (None: the device's default)

    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        super().__init__(spec, catalog)
        set_threads()
        self.placement = devices.current(half=self.half)
        self.model = self.placement.prepare(self.load_model(catalog), channels_last=self.channels_last)
        self.compiled = self.openvino_twin(catalog) if self.placement.device == "cpu" else None

    @property
    def backend(self) -> str:
        return "openvino" if self.compiled else "torch"

    @property
    def precision(self) -> str:
        return self.compiled.precision if self.compiled else backends.short(self.placement.precision)

    @property
    def precision_note(self) -> str | None:
        """Why OpenVINO does not run the precision asked for (int8), in one line."""
        return self.compiled.precision_note if self.compiled else None

    def openvino_twin(self, catalog: Catalog | None):
        """The model compiled by OpenVINO when that is the backend (None: PyTorch runs it)."""
        if backends.chosen() != "openvino":
            return None
        try:
            from core.methods import openvino_model

            sample = self.preprocess([Image.new("RGB", (256, 256), "white")])
            size = self.preprocess.size if isinstance(self.preprocess, Pixels) else None
            example = torch.zeros(1, 3, size, size) if size else torch.from_numpy(sample)
            digest = weights_digest(self.model)
            return openvino_model.from_torch(self.spec, catalog, Features(self), example, digest, self.preprocess)
        except SettingError:  # a bad setting is the user's to fix, not a reason to fall back
            raise
        except Exception as exc:  # conversion trouble: PyTorch still works
            log.warning("OpenVINO cannot run %s, using PyTorch: %s", self.spec.name, exc)
            return None

    @property
    def device(self) -> str:
        return self.placement.device

    @abstractmethod
    def load_model(self, catalog: Catalog | None) -> torch.nn.Module:
        """The model with its weights loaded."""

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        if self.compiled is not None:
            return self.compiled.forward(batch)
        with torch.inference_mode(), self.placement.autocast():
            features = self.features(self.pixels(batch))
        return features.float().cpu().numpy()

    def pixels(self, batch: np.ndarray) -> torch.Tensor:
        """The model's input tensor: a float batch as it is, a `Pixels` uint8 batch normalised."""
        if batch.dtype != np.uint8 or not isinstance(self.preprocess, Pixels):
            return self.placement.tensor(batch, channels_last=self.channels_last)
        nhwc = devices.to_device(batch, self.device)
        mean = torch.tensor(self.preprocess.mean, device=self.device) * 255
        std = torch.tensor(self.preprocess.std, device=self.device) * 255
        nchw = ((nhwc.float() - mean) / std).permute(0, 3, 1, 2)  # a channels-last view, no copy
        return nchw if self.channels_last else nchw.contiguous()
