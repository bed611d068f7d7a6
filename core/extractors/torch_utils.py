"""Shared pieces for torch-based extractors: threads, preprocessing, batched no-grad forward."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from core.settings import settings


def threads() -> int:
    """Intra-op threads for a model: `$LOOKALIKE_THREADS`, else every core (2 on the reference machine)."""
    return settings().threads


def set_threads() -> None:
    torch.set_num_threads(threads())


def to_array(images: list[Image.Image], size: int, mean: tuple, std: tuple,
             resample: int = Image.BILINEAR) -> np.ndarray:
    """Resize each image to size x size (whole garment kept) and normalise: NCHW float32 NumPy."""
    batch = np.stack([np.asarray(img.convert("RGB").resize((size, size), resample)) for img in images])
    scale = np.float32(1 / 255) / np.asarray(std, dtype=np.float32)
    shift = np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray((batch * scale - shift).transpose(0, 3, 1, 2), dtype=np.float32)


def channels_last(batch: np.ndarray) -> torch.Tensor:
    """A `to_array` batch as a channels-last tensor (the fast layout for CPU convolutions).

    Call it on the thread that runs the model: decode threads stay NumPy-only, because a torch
    op on another thread starts another OpenMP pool that spins against the model's.
    """
    return torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)
