"""Region colour histograms (OpenCV): HSV histograms of four corners and a centre ellipse.

The vector is the Hellinger form of the histogram: the concatenated histogram is L1-normalised
and square-rooted, so its L2 norm is 1 and Euclidean/cosine distance on it is the Hellinger
distance, which Annoy serves directly. Squaring a vector gives the histogram back, for exact
chi-square re-ranking (the "hellinger" metric, core/methods/distances.py).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from core.methods.base import ImageExtractor

BINS = (8, 12, 3)  # hue, saturation, value bins per region (specs.py: 5 regions x 288 = 1440-d)
SIZE = 224


def _masks(height: int, width: int) -> list[np.ndarray]:
    """Four corner masks minus a centre ellipse, then the ellipse itself."""
    cx, cy = width // 2, height // 2
    ellipse = np.zeros((height, width), dtype=np.uint8)
    cv2.ellipse(ellipse, (cx, cy), (int(width * 0.75) // 2, int(height * 0.75) // 2), 0, 0, 360, 255, -1)
    masks = []
    for x0, x1, y0, y1 in ((0, cx, 0, cy), (cx, width, 0, cy), (cx, width, cy, height), (0, cx, cy, height)):
        corner = np.zeros((height, width), dtype=np.uint8)
        corner[y0:y1, x0:x1] = 255
        masks.append(cv2.subtract(corner, ellipse))
    masks.append(ellipse)
    return masks


_MASKS = _masks(SIZE, SIZE)


def histogram(image: Image.Image) -> np.ndarray:
    """The raw region histogram (5 regions x 8*12*3 bins), L1-normalised."""
    rgb = np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    parts = [cv2.calcHist([hsv], [0, 1, 2], mask, list(BINS), [0, 180, 0, 256, 0, 256]).ravel() for mask in _MASKS]
    hist = np.concatenate(parts).astype(np.float64)
    return (hist / max(hist.sum(), 1e-12)).astype(np.float32)


def histograms(images: list[Image.Image]) -> np.ndarray:
    """A batch's histograms (in decode workers: OpenCV releases the GIL)."""
    return np.stack([histogram(img) for img in images])


class ColourHistogram(ImageExtractor):
    preprocess = staticmethod(histograms)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return np.sqrt(batch).astype(np.float32)
