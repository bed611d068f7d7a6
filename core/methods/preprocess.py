"""Preprocessing shared by image methods: photos -> a normalised NCHW float32 NumPy batch.

NumPy and Pillow only, and module-level functions (or partials of them), so a batch can be
prepared in decode threads or processes (core/engines/decode.py) while the model runs.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def to_array(
    images: list[Image.Image], size: int, mean: tuple, std: tuple, resample: int = Image.BILINEAR
) -> np.ndarray:
    """Resize each image to size x size (whole garment kept) and normalise: NCHW float32 NumPy."""
    batch = np.stack([np.asarray(img.convert("RGB").resize((size, size), resample)) for img in images])
    scale = np.float32(1 / 255) / np.asarray(std, dtype=np.float32)
    shift = np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray((batch * scale - shift).transpose(0, 3, 1, 2), dtype=np.float32)
