"""Shared pieces for torch-based extractors: threads, the device, and the image-extractor base.

Only extractors import this module (it imports torch); commands that need no model never do.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch

from core.catalog.db import Catalog
from core.methods import devices
from core.methods.base import ImageExtractor
from core.methods.spec import MethodSpec
from core.settings import settings


def set_threads() -> None:
    """Intra-op threads for a model: `$LOOKALIKE_THREADS`, else every core (2 on the reference machine)."""
    torch.set_num_threads(settings().threads)


class TorchImageExtractor(ImageExtractor):
    """An image extractor whose model is a torch module.

    Subclasses build the module in `load_model` and may override `features` (default: the
    module's output). `self.placement` (core.methods.devices) says where the module and every batch
    live and which precision to autocast to. Batches come from `preprocess` as NumPy and become
    tensors here, on the model's thread: a torch op in a decode thread would start another
    OpenMP pool that spins against the model's.
    """

    channels_last = False  # convolutional models run faster in channels-last layout
    half: str | None = None  # the model's own half precision on a GPU (None: the device's default)

    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        super().__init__(spec, catalog)
        set_threads()
        self.placement = devices.current(half=self.half)
        self.model = self.placement.prepare(self.load_model(catalog), channels_last=self.channels_last)

    @property
    def device(self) -> str:
        return self.placement.device

    @abstractmethod
    def load_model(self, catalog: Catalog | None) -> torch.nn.Module:
        """The model with its weights loaded."""

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), self.placement.autocast():
            features = self.features(self.placement.tensor(batch, channels_last=self.channels_last))
        return features.float().cpu().numpy()
