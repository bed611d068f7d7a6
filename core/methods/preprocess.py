"""Preprocessing shared by image methods: photos -> resized uint8 pixels (`Pixels`, `to_uint8`),
normalised on the model's side, or -> a normalised NCHW float32 batch in one step (`to_array`).
A `Pixels` resizes the whole photo to a square (the CNNs) or, as transformers' CLIP-style
processors do, its shorter side first and then crops the centre (`shortest_edge`).

NumPy and Pillow only, and picklable (module-level functions, partials of them, `Pixels`), so a
batch can be prepared in decode threads or processes (core/engines/decode.py) while the model runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Pixels:
    """Photos -> size x size uint8 NHWC, and how the model normalises them (`(x / 255 - mean) / std`).

    Without `shortest_edge` each photo is resized to size x size (whole garment kept: no crop);
    with it, its shorter side is resized to `shortest_edge` (aspect kept) and the centre
    size x size is cut out. A picklable preprocessing (decode processes); `draft` tells the
    decoder how far a JPEG may be reduced while it decodes.
    """

    size: int
    mean: tuple[float, ...]  # per channel (R, G, B)
    std: tuple[float, ...]
    resample: int = Image.Resampling.BILINEAR
    shortest_edge: int | None = None

    def __post_init__(self):
        if self.shortest_edge is not None and self.shortest_edge < self.size:
            raise ValueError(f"a {self.size}-pixel crop needs a shortest edge of at least {self.size}")

    @property
    def draft(self) -> int:
        """The fewest pixels either side of a decoded photo may have."""
        return self.shortest_edge or self.size

    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        if self.shortest_edge is None:
            return to_uint8(images, self.size, self.resample)
        return centre_crops(images, self.shortest_edge, self.size, self.resample)

    def normalise(self, batch: np.ndarray) -> np.ndarray:
        """uint8 NHWC -> normalised float32 NCHW (on the model's side of the pipe)."""
        scale = np.float32(1 / 255) / np.asarray(self.std, dtype=np.float32)
        shift = np.asarray(self.mean, dtype=np.float32) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray((batch * scale - shift).transpose(0, 3, 1, 2), dtype=np.float32)


def to_uint8(images: list[Image.Image], size: int, resample: int = Image.Resampling.BILINEAR) -> np.ndarray:
    """Resize each image to size x size (whole garment kept): NHWC uint8, a quarter of float32's bytes."""
    side = (size, size)
    batch = np.empty((len(images), size, size, 3), np.uint8)
    for n, img in enumerate(images):
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        batch[n] = np.asarray(rgb if rgb.size == side else rgb.resize(side, resample))
    return batch


def centre_crops(images: list[Image.Image], shortest_edge: int, size: int, resample: int) -> np.ndarray:
    """Resize each image's shorter side to `shortest_edge` (aspect kept), then cut out the centre
    size x size: NHWC uint8. Sizes and offsets as transformers' image processors compute them."""
    batch = np.empty((len(images), size, size, 3), np.uint8)
    for n, img in enumerate(images):
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        width, height = rgb.size
        if width <= height:
            side = (shortest_edge, int(shortest_edge * height / width))
        else:
            side = (int(shortest_edge * width / height), shortest_edge)
        if rgb.size != side:
            rgb = rgb.resize(side, resample)
        left, top = (side[0] - size) // 2, (side[1] - size) // 2
        batch[n] = np.asarray(rgb.crop((left, top, left + size, top + size)))
    return batch


def to_array(
    images: list[Image.Image], size: int, mean: tuple, std: tuple, resample: int = Image.Resampling.BILINEAR
) -> np.ndarray:
    """Resize each image to size x size and normalise: NCHW float32 NumPy (Pixels in one step)."""
    pixels = Pixels(size, mean, std, resample)
    return pixels.normalise(pixels(images))
