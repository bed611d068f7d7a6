"""Shared pieces for torch-based extractors: threads, the device, and the image-extractor base.

Only extractors import this module (it imports torch); commands that need no model never do.
"""
from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch

from core.db import Catalog
from core.extractors.base import ImageExtractor
from core.extractors.registry import MethodSpec
from core.settings import settings


def set_threads() -> None:
    """Intra-op threads for a model: `$LOOKALIKE_THREADS`, else every core (2 on the reference machine)."""
    torch.set_num_threads(settings().threads)


def torch_device() -> torch.device:
    """Where torch models and their inputs live: the one place the device is chosen (the CPU for now)."""
    return torch.device("cpu")


class TorchImageExtractor(ImageExtractor):
    """An image extractor whose model is a torch module.

    Subclasses build the module in `load_model` and may override `features` (default: the
    module's output). The module and every batch live on `self.device`. Batches come from
    `preprocess` as NumPy and become tensors here, on the model's thread: a torch op in a
    decode thread would start another OpenMP pool that spins against the model's.
    """

    channels_last = False     # convolutional models run faster in channels-last layout on the CPU

    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        super().__init__(spec, catalog)
        set_threads()
        self.device = torch_device()
        model = self.load_model(catalog).eval()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.to(self.device)

    @abstractmethod
    def load_model(self, catalog: Catalog | None) -> torch.nn.Module:
        """The model with its weights loaded."""

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)

    def to_tensor(self, batch: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if self.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor.to(self.device)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.features(self.to_tensor(batch)).float().cpu().numpy()
