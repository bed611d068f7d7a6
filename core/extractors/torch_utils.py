"""Shared pieces for torch-based extractors: threads, preprocessing, batched no-grad forward."""
from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image


def set_threads() -> None:
    """Use every core for intra-op work (2 on the reference machine)."""
    torch.set_num_threads(max(1, int(os.environ.get("LOOKALIKE_THREADS", os.cpu_count() or 1))))


def to_tensor(images: list[Image.Image], size: int, mean: tuple, std: tuple,
              resample: int = Image.BILINEAR) -> torch.Tensor:
    """Resize each image to size x size (whole garment kept) and normalise; NCHW float32."""
    batch = np.stack([np.asarray(img.convert("RGB").resize((size, size), resample), dtype=np.float32)
                      for img in images])
    batch = (batch / 255.0 - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)
