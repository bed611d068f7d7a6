"""Where torch methods run: device choice, precision, autocast and a batch size that fits memory.

`--device auto|cpu|cuda|mps` (or `$LOOKALIKE_DEVICE`, or the app's setting) picks the device;
`auto` means CUDA when torch sees a GPU, else the CPU. On a GPU models run in bfloat16 autocast
(float16 where bfloat16 is missing, or where a model asks for it), channels-last for
convolutions; on the CPU in float32, unless a caller asks for a half precision (tests and
benchmarks check the half-precision path there).
`resolve` and `summary` avoid importing torch on machines with no NVIDIA driver at all, so the
light commands stay light.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.settings import settings

log = logging.getLogger(__name__)

CHOICES = ("auto", "cpu", "cuda", "mps")
CPU_BATCH = 32  # the CPU default: enough to amortise a call, small enough for the decode pipeline
MAX_GPU_BATCH = 1024
HEADROOM = 0.7  # share of the free GPU memory a batch may take


class DeviceUnavailable(ValueError):
    """The asked-for device is not on this machine (one line for the user)."""


@dataclass(frozen=True)
class Placement:
    """A device and the reduced precision to autocast to there (None: float32)."""

    device: str = "cpu"
    dtype: str | None = None  # "bfloat16", "float16" or None

    @property
    def is_gpu(self) -> bool:
        return self.device != "cpu"

    @property
    def precision(self) -> str:
        return self.dtype or "float32"

    def prepare(self, model, channels_last: bool = False):
        """The model in eval mode on this device (channels-last for convolutional nets)."""
        import torch

        model = model.eval().to(self.device)
        return model.to(memory_format=torch.channels_last) if channels_last else model

    def tensor(self, batch: np.ndarray, channels_last: bool = False):
        """A NumPy NCHW batch as a tensor on this device (channels-last for convolutions).

        Call it on the thread that runs the model: decode workers stay NumPy-only, because a torch
        op on another thread starts another OpenMP pool that spins against the model's.
        """
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device, non_blocking=True)
        return tensor.contiguous(memory_format=torch.channels_last) if channels_last else tensor

    def autocast(self):
        """Autocast to the reduced precision on this device, or nothing in float32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.device, dtype=getattr(torch, self.dtype))


def _no_nvidia_driver() -> bool:
    """True when CUDA certainly cannot be there, decided without importing torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return True
    return sys.platform == "linux" and not Path("/proc/driver/nvidia").exists() and not Path("/dev/nvidiactl").exists()


def cuda_available() -> bool:
    if _no_nvidia_driver():
        return False
    import torch

    return torch.cuda.is_available()


def mps_available() -> bool:
    if sys.platform != "darwin":
        return False
    import torch

    return torch.backends.mps.is_available()


def configured() -> str:
    """The device asked for in the settings (`LOOKALIKE_DEVICE`), or `auto` when that is not a choice."""
    return settings().device if settings().device in CHOICES else "auto"


def resolve(requested: str | None = None) -> str:
    """`auto`/`cpu`/`cuda`/`mps` (default: the selected or configured one) -> the device to use."""
    choice = (requested or _choice()[0] or settings().device or "auto").strip().lower()
    if choice not in CHOICES:
        raise ValueError(f"unknown device {choice!r}; choose one of {', '.join(CHOICES)}")
    if choice == "auto":
        return "cuda" if cuda_available() else "cpu"
    if choice == "cuda" and not cuda_available():
        raise DeviceUnavailable("--device cuda: torch sees no CUDA GPU on this machine; use --device cpu or auto")
    if choice == "mps" and not mps_available():
        raise DeviceUnavailable("--device mps: Apple MPS is not available here; use --device cpu or auto")
    return choice


def half_dtype(device: str) -> str | None:
    """bfloat16 where the GPU has it, else float16; None (float32) on the CPU."""
    if device == "cpu":
        return None
    if device == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float16"


_selected: str | None = None
_precision: str | None = None
# A block's own choice (`placed`): seen only by the thread (or task) that made it, so one app
# session's job on the GPU leaves another session's pick, and the process's, alone.
_placed: contextvars.ContextVar[tuple[str | None, str | None] | None] = contextvars.ContextVar("placed", default=None)


def _choice() -> tuple[str | None, str | None]:
    """(device asked for, precision asked for): the enclosing `placed` block's, else the process's."""
    return _placed.get() or (_selected, _precision)


def select(requested: str | None, precision: str | None = None) -> str:
    """Choose the device for this process (CLI flag, app setting); return the resolved device.

    `precision` overrides the automatic choice (e.g. "bfloat16" on the CPU); None keeps it.
    The choice is checked first, so a missing GPU fails here, in one line.
    """
    global _selected, _precision
    device = resolve(requested)
    _selected, _precision = requested, precision
    return device


@contextlib.contextmanager
def placed(requested: str | None, precision: str | None = None) -> Iterator[str]:
    """Use a device for the duration of a block, in this thread only (an app session's job, a Ray
    driver's CPU copy of a model, tests); checked first, like `select`."""
    device = resolve(requested)
    token = _placed.set((requested, precision))
    try:
        yield device
    finally:
        _placed.reset(token)


def current(half: str | None = None) -> Placement:
    """Where the next model goes: the selected (or configured) device and its precision.

    half: the model's own half precision on a GPU, where bfloat16 (8-bit mantissa) costs it
    the 0.999 cosine to float32 and float16 (11 bits) does not.
    """
    device = resolve()
    precision = _choice()[1]
    if precision is not None:
        return Placement(device, precision)
    return Placement(device, (half or half_dtype(device)) if device != "cpu" else None)


def summary(requested: str | None = None) -> dict:
    """What the Home and Methods pages and `methods --json` show: the device that will be used."""
    if requested is None:
        placement = current()
    else:
        device = resolve(requested)
        placement = Placement(device, half_dtype(device))
    if placement.device == "cuda":
        import torch

        name = torch.cuda.get_device_name(0)
    elif placement.device == "mps":
        name = "Apple GPU (MPS)"
    else:
        name = f"CPU, {settings().threads} threads"
    return {
        "requested": requested or _choice()[0] or settings().device,
        "device": placement.device,
        "name": name,
        "precision": placement.precision,
    }


def describe(requested: str | None = None) -> str:
    """One line for people, e.g. `cuda (NVIDIA H200), bfloat16`."""
    info = summary(requested)
    return f"{info['device']} ({info['name']}), {info['precision'] or 'float32'}"


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """`--device auto|cpu|cuda|mps` for any command that runs torch models."""
    parser.add_argument(
        "--device",
        choices=CHOICES,
        default=None,
        help="where torch models run (default: $LOOKALIKE_DEVICE or auto = CUDA if present)",
    )


def fit_batch(per_item_bytes: float, free_bytes: float, ceiling: int = MAX_GPU_BATCH) -> int:
    """The largest power-of-two batch whose activations fit in HEADROOM of the free memory."""
    fits = int(free_bytes * HEADROOM // max(per_item_bytes, 1.0))
    if fits < 1:
        return 1
    return min(ceiling, 1 << (fits.bit_length() - 1))


def free_memory(device: str) -> int | None:
    """Free accelerator memory in bytes (None on the CPU, where RAM is not the limit)."""
    import torch

    if device == "cuda":
        return int(torch.cuda.mem_get_info()[0])
    if device == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    return None


def probe_bytes_per_item(forward: Callable[[np.ndarray], np.ndarray], sample: np.ndarray, device: str) -> float:
    """Peak memory one item takes in `forward`, measured on a small sample batch (CUDA only)."""
    import torch

    if device != "cuda":
        return float(sample[0].nbytes * 64)  # MPS has no peak counter: a generous guess
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    forward(sample)
    torch.cuda.synchronize()
    return max(torch.cuda.max_memory_allocated() - before, 1) / len(sample)


def batch_size(extractor, requested: int | None, placement: Placement | None = None) -> int:
    """The batch size to embed with: `requested`, else 32 on the CPU and what fits on a GPU.

    On a GPU an explicit batch size is kept when it fits; a bigger one is lowered to what fits.
    """
    placement = placement or current()
    if not placement.is_gpu or not hasattr(extractor, "forward"):
        return requested or CPU_BATCH
    from PIL import Image

    sample = extractor.preprocess([Image.new("RGB", (256, 256), "white")] * 8)
    per_item = probe_bytes_per_item(extractor.forward, sample, placement.device)
    fits = fit_batch(per_item, free_memory(placement.device) or 0)
    chosen = min(requested, fits) if requested else fits
    log.info("batch size %d on %s (%.1f MiB per item)", chosen, placement.device, per_item / 2**20)
    return chosen


def forward_fitting(forward: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
    """`forward(batch)`, halving the batch while the accelerator runs out of memory."""
    import torch

    try:
        return forward(batch)
    except torch.OutOfMemoryError:
        if len(batch) == 1:
            raise
        torch.cuda.empty_cache()
        log.warning("out of GPU memory at batch %d; halving it", len(batch))
        half = len(batch) // 2
        return np.concatenate([forward_fitting(forward, batch[:half]), forward_fitting(forward, batch[half:])])
