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
import functools
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.settings import settings
from core.team.access import Action, require

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
        """The model in eval mode on this device, its weights in the half precision when there is one
        (so autocast does not cast them again every batch, and the memory probe sees the real size),
        channels-last for convolutional nets."""
        import torch

        model = model.eval().to(self.device)
        if self.dtype is not None:
            model = model.to(getattr(torch, self.dtype))
        return model.to(memory_format=torch.channels_last) if channels_last else model

    def tensor(self, batch: np.ndarray, channels_last: bool = False):
        """A NumPy NCHW batch as a tensor on this device (channels-last for convolutions).

        Call it on the thread that runs the model: decode workers stay NumPy-only, because a torch
        op on another thread starts another OpenMP pool that spins against the model's.
        """
        import torch

        tensor = to_device(np.ascontiguousarray(batch, dtype=np.float32), self.device)
        return tensor.contiguous(memory_format=torch.channels_last) if channels_last else tensor

    def autocast(self):
        """Autocast to the reduced precision on this device, or nothing in float32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.device, dtype=getattr(torch, self.dtype))


def pinned_copy(device: str) -> bool:
    """Whether a host batch goes to `device` through pinned (page-locked) memory: to a CUDA GPU yes,
    since only from pinned memory is a `non_blocking` copy asynchronous (from pageable memory it blocks)."""
    return device.split(":")[0] == "cuda"


def to_device(batch: np.ndarray, device: str):
    """A NumPy batch as a torch tensor on `device`: on the CPU the array's own memory (no copy); to a
    CUDA GPU pinned first, then copied without blocking the model's thread (`pinned_copy`)."""
    import torch

    tensor = torch.from_numpy(batch)
    if not pinned_copy(device):
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def _no_nvidia_driver() -> bool:
    """True when CUDA certainly cannot be there, decided without importing torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return True
    # /dev/dxg: a WSL2 guest, whose GPU has neither /proc/driver/nvidia nor /dev/nvidiactl
    signs = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/dxg")
    return sys.platform == "linux" and not any(Path(sign).exists() for sign in signs)


# The oldest NVIDIA driver branch each CUDA major version runs on (NVIDIA's CUDA release notes).
MIN_DRIVER = {11: 450, 12: 525, 13: 580}
OLDER_DRIVERS = "docs/scale.md#older-nvidia-drivers"


def _driver_version() -> str | None:
    """The loaded NVIDIA driver's version ('' when a GPU answers but says no version), None without one."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        found = re.search(r"Kernel Module.*?\s(\d{3,}\.\d+(?:\.\d+)?)\s", text)
        if found:
            return found.group(1)
    except OSError:
        pass
    try:
        answer = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "" if Path("/dev/nvidiactl").exists() else None
    if answer.returncode != 0:
        return "" if Path("/dev/nvidiactl").exists() else None
    return answer.stdout.strip().splitlines()[0] if answer.stdout.strip() else ""


@functools.cache
def unusable_gpu() -> str | None:
    """Why an NVIDIA GPU that is on this machine cannot be used by this torch; None when there is
    no GPU or torch can use it. Names the driver the installed torch needs."""
    if _no_nvidia_driver():
        return None
    import torch

    if torch.cuda.is_available():
        return None
    driver = _driver_version()
    if driver is None:
        return None
    build = torch.version.cuda
    seen = f"an NVIDIA GPU is here (driver {driver or 'version unknown'})"
    if build is None:
        return f"{seen} but torch {torch.__version__} is a CPU-only build; install a CUDA build ({OLDER_DRIVERS})"
    needed = MIN_DRIVER.get(int(build.split(".")[0]))
    major = int(driver.split(".")[0]) if driver[:1].isdigit() else None
    if needed and (major is None or major < needed):
        return (
            f"{seen} but torch {torch.__version__} is built for CUDA {build}, which needs driver R{needed} or "
            f"newer; update the driver, or install a torch built for your driver ({OLDER_DRIVERS})"
        )
    return f"{seen} but torch {torch.__version__} (CUDA {build}) cannot open it; check `nvidia-smi` as this user"


def cuda_available() -> bool:
    if _no_nvidia_driver():
        return False
    import torch

    return torch.cuda.is_available()


_warned = False


def _warn_unusable_gpu() -> None:
    """`--device auto` fell back to the CPU: say once why, when a GPU is there but unusable."""
    global _warned
    reason = None if _warned else unusable_gpu()
    if reason:
        _warned = True
        log.warning("%s; running on the CPU", reason)


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
    asked = requested or _choice()[0]
    choice = (asked or settings().device or "auto").strip().lower()
    # name where the choice came from: the option (or the app's setting), else the variable
    source, fix = (
        (f"--device {choice}", "use --device cpu or auto")
        if asked
        else (
            f"LOOKALIKE_DEVICE={choice}",
            "set LOOKALIKE_DEVICE to cpu or auto",
        )
    )
    if choice not in CHOICES:
        raise DeviceUnavailable(f"{source} is not a device: choose one of {', '.join(CHOICES)}")
    if choice == "auto":
        if cuda_available():
            return "cuda"
        _warn_unusable_gpu()
        return "cpu"
    if choice == "cuda" and not cuda_available():
        reason = unusable_gpu() or "torch sees no CUDA GPU on this machine"
        raise DeviceUnavailable(f"{source}: {reason}; {fix}")
    if choice == "mps" and not mps_available():
        raise DeviceUnavailable(f"{source}: Apple MPS is not available here; {fix}")
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
    The choice is checked first, so a missing GPU fails here, in one line. Admins only (NotAllowed).
    """
    global _selected, _precision
    require(Action.DEVICE)
    device = resolve(requested)
    _selected, _precision = requested, precision
    return device


@contextlib.contextmanager
def placed(requested: str | None, precision: str | None = None) -> Iterator[str]:
    """Use a device for the duration of a block, in this thread only (an app session's job, a Ray
    driver's CPU copy of a model, tests); checked first, like `select`. Admins only (NotAllowed)."""
    require(Action.DEVICE)
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


@dataclass(frozen=True)
class DeviceSummary:
    """The device that will be used (`methods`, the Methods page): `device` None when it cannot be
    used, `name` then saying why."""

    requested: str
    device: str | None
    name: str  # e.g. "NVIDIA H200", "CPU, 2 threads", or why the requested device is unusable
    precision: str | None


def summary(requested: str | None = None) -> DeviceSummary:
    """What the Home and Methods pages and `methods` show: the device that will be used."""
    try:
        return _summary(requested)
    except ValueError as exc:  # a device that is not here, or LOOKALIKE_THREADS unusable: say so, never raise
        shown = requested or _choice()[0] or settings().device
        return DeviceSummary(shown, None, str(exc), None)


def _summary(requested: str | None) -> DeviceSummary:
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
    return DeviceSummary(requested or _choice()[0] or settings().device, placement.device, name, placement.precision)


def describe(requested: str | None = None) -> str:
    """One line for people, e.g. `cuda (NVIDIA H200), bfloat16`."""
    info = summary(requested)
    if info.device is None:
        return f"no device: {info.name}"
    return f"{info.device} ({info.name}), {info.precision or 'float32'}"


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

    if device == "cuda":  # the driver's free memory and the blocks torch holds cached but unused
        return int(torch.cuda.mem_get_info()[0] + torch.cuda.memory_reserved() - torch.cuda.memory_allocated())
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


class FittingForward:
    """`forward(batch)` in slices that fit the accelerator's memory, halving the slice on out-of-memory.

    The retry happens after the `except` block has ended: inside it, the traceback keeps the failed
    call's tensors alive, so no smaller slice could fit either. The cache is emptied before the
    retry, and the size that worked is kept for every later batch (which would fail the same way).
    """

    def __init__(self, forward: Callable[[np.ndarray], np.ndarray]):
        self.forward = forward
        self.size: int | None = None  # the largest slice known to fit (None: any so far)

    def _attempt(self, batch: np.ndarray) -> np.ndarray | None:
        """forward(batch), or None when it ran out of memory (the failed call's frames are gone on return)."""
        import torch

        try:
            return self.forward(batch)
        except torch.OutOfMemoryError:
            if len(batch) == 1:
                raise
            return None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        parts, start = [], 0
        while start < len(batch):
            size = min(self.size or len(batch), len(batch) - start)
            result = self._attempt(batch[start : start + size])
            if result is None:
                release_cache()
                self.size = size // 2
                log.warning("out of GPU memory at batch %d; going on with %d", size, self.size)
                continue
            parts.append(result)
            start += size
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def release_cache() -> None:
    """Hand the allocator's cached blocks back, so a smaller retry can use them."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    elif torch.backends.mps.is_available():
        torch.mps.empty_cache()
