"""int8 for OpenVINO: NNCF post-training quantisation on a catalog's own photos, kept only where it
keeps the answers.

- Where: `--precision int8` (or LOOKALIKE_PRECISION=int8) asks for it; `auto` uses it where the CPU
  has int8 dot-product units (AMX-INT8 or VNNI) and this catalog's int8 model passed its check
  (made by a run with `int8`), else stays at bf16/fp32 and says why in one line.
- Calibration: up to CALIBRATION photos of the catalog (a stable pseudo-random choice: ordered by
  their SHA-256); the check: up to CHECK other photos of it. The sample's digest is part of the
  int8 model's key in the user-wide cache (model_cache.py), beside the float model's.
- The check: per-photo cosine to the float model's vectors >= MIN_COSINE on every checked photo,
  and category P@10 among the checked photos no more than MAX_P10_DROP below the float model's
  (when the catalog has categories). A model that fails is not used; its verdict is kept with it,
  so the check is not run again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import openvino as ov

from core.catalog.db import Catalog
from core.catalog.images import load_rgb
from core.methods.preprocess import Pixels

log = logging.getLogger(__name__)

CALIBRATION = 300
CHECK = 200
MIN_PHOTOS = 200  # fewer photos than this cannot calibrate and check
MIN_COSINE = 0.98
MAX_P10_DROP = 0.005


def int8_units(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """`AMX-INT8` or `VNNI` when the CPU has int8 dot-product units (Linux flags), else None."""
    try:
        flags = set(next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split())
    except (OSError, StopIteration):
        return None
    if "amx_int8" in flags:
        return "AMX-INT8"
    return "VNNI" if flags & {"avx512_vnni", "avx_vnni"} else None


def nncf_version() -> str | None:
    try:
        return metadata.version("nncf")
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Sample:
    """The catalog photos that calibrate (`calibration`) and check (`check`, with their categories)."""

    calibration: list[str]
    check: list[str]
    categories: list[str | None]
    digest: str


def sample(catalog: Catalog) -> Sample | str:
    """The catalog's calibration and check photos, or why there are too few (one line)."""
    rows = catalog.execute(
        "SELECT images.path, images.sha256, items.category FROM images JOIN items ON items.id = images.item_id "
        "WHERE images.status = 'ok' AND images.path IS NOT NULL AND images.sha256 IS NOT NULL "
        "ORDER BY images.sha256 LIMIT ?",
        [CALIBRATION + CHECK],
    ).fetchall()
    if len(rows) < MIN_PHOTOS:
        return (
            f"int8 needs at least {MIN_PHOTOS} readable photos to calibrate and check on; this catalog has {len(rows)}"
        )
    split = len(rows) * CALIBRATION // (CALIBRATION + CHECK)
    digest = hashlib.sha256("\n".join(sha for _, sha, _ in rows).encode()).hexdigest()[:12]
    return Sample(
        [path for path, _, _ in rows[:split]],
        [path for path, _, _ in rows[split:]],
        [category for _, _, category in rows[split:]],
        digest,
    )


def photos(paths: list[str], preprocess) -> np.ndarray:
    """The photos as the model's side receives them (uint8 NHWC for Pixels, else float NCHW)."""
    draft = preprocess.draft if isinstance(preprocess, Pixels) else None
    return preprocess([load_rgb(path, draft) for path in paths])


def quantise(model: ov.Model, pixels: Pixels | None, shape: tuple, calibration: np.ndarray) -> ov.Model:
    """`model` (float input, normalised NCHW) quantised to int8 by NNCF on `calibration` photos."""
    import nncf

    model.reshape({model.inputs[0].any_name: [1, *shape[1:]]})
    inputs = calibration if pixels is None else pixels.normalise(calibration)
    transformer = any(op.get_type_name() == "Softmax" for op in model.get_ordered_ops())
    return nncf.quantize(
        model,
        nncf.Dataset([inputs[n : n + 1] for n in range(len(inputs))]),
        subset_size=len(inputs),
        preset=nncf.QuantizationPreset.MIXED,
        model_type=nncf.ModelType.TRANSFORMER if transformer else None,
    )


@dataclass(frozen=True)
class Verdict:
    """How the int8 model answers against the float one on the check photos."""

    passed: bool
    min_cosine: float
    mean_cosine: float
    p10_int8: float | None
    p10_float: float | None
    photos: int

    @property
    def why(self) -> str:
        """One line: what the check found."""
        p10 = "" if self.p10_int8 is None else f", category P@10 {self.p10_int8:.3f} vs {self.p10_float:.3f}"
        verdict = "kept" if self.passed else f"not used (needs cosine >= {MIN_COSINE} on every photo"
        verdict += "" if self.passed else f", P@10 within {MAX_P10_DROP})"
        return f"int8 {verdict}: cosine to float min {self.min_cosine:.3f}, mean {self.mean_cosine:.3f}{p10} on {self.photos} photos"


def p10(vectors: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean share of each photo's k nearest others (cosine) with its label."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(vectors) - 1)
    nearest = np.argpartition(-sims, k, axis=1)[:, :k]
    return float((labels[nearest] == labels[:, None]).mean())


def verdict(int8: np.ndarray, exact: np.ndarray, categories: list[str | None]) -> Verdict:
    """The check of int8 unit vectors against float ones of the same photos."""
    cosine = (int8 * exact).sum(axis=1)
    labels = np.array([c or "" for c in categories])
    labelled = len(set(labels) - {""}) >= 2
    p_int8: float | None = None
    p_float: float | None = None
    kept = True  # without two categories, only the cosine is checked
    if labelled:
        p_int8, p_float = p10(int8, labels), p10(exact, labels)
        kept = p_int8 >= p_float - MAX_P10_DROP
    passed = bool(cosine.min() >= MIN_COSINE) and kept
    return Verdict(passed, float(cosine.min()), float(cosine.mean()), p_int8, p_float, len(cosine))
