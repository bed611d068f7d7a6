"""Preprocessing shared by image methods: photos -> resized uint8 pixels (`Pixels`, `to_uint8`),
normalised on the model's side, or -> a normalised NCHW float32 batch in one step (`to_array`).

NumPy and Pillow only, and picklable (module-level functions, partials of them, `Pixels`), so a
batch can be prepared in decode threads or processes (core/engines/decode.py) while the model runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Pixels:
    """Photos -> size x size uint8 NHWC (whole garment kept: no crop), and how the model normalises them.

    A picklable preprocessing (decode processes). `size` also tells the decoder how far a JPEG
    may be reduced while it decodes.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: int = Image.BILINEAR

    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        return to_uint8(images, self.size, self.resample)

    def normalise(self, batch: np.ndarray) -> np.ndarray:
        """uint8 NHWC -> normalised float32 NCHW (on the model's side of the pipe)."""
        scale = np.float32(1 / 255) / np.asarray(self.std, dtype=np.float32)
        shift = np.asarray(self.mean, dtype=np.float32) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray((batch * scale - shift).transpose(0, 3, 1, 2), dtype=np.float32)


def to_uint8(images: list[Image.Image], size: int, resample: int = Image.BILINEAR) -> np.ndarray:
    """Resize each image to size x size (whole garment kept): NHWC uint8, a quarter of float32's bytes."""
    side = (size, size)
    batch = np.empty((len(images), size, size, 3), np.uint8)
    for n, img in enumerate(images):
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        batch[n] = np.asarray(rgb if rgb.size == side else rgb.resize(side, resample))
    return batch


def to_array(
    images: list[Image.Image], size: int, mean: tuple, std: tuple, resample: int = Image.BILINEAR
) -> np.ndarray:
    """Resize each image to size x size and normalise: NCHW float32 NumPy (Pixels in one step)."""
    pixels = Pixels(size, mean, std, resample)
    return pixels.normalise(pixels(images))
