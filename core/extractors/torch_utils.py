"""Shared pieces for torch-based extractors: threads, preprocessing, batched no-grad forward."""
from __future__ import annotations

import numpy as np
import torch

from core.decode import to_array  # noqa: F401 - preprocessing lives with decoding (picklable, torch-free)
from core.settings import settings


def threads() -> int:
    """Intra-op threads for a model: `$LOOKALIKE_THREADS`, else every core (2 on the reference machine)."""
    return settings().threads


def set_threads() -> None:
    torch.set_num_threads(threads())


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)
