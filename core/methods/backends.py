"""Which runtime runs image models on the CPU, and at what precision; no runtime is imported here.

- `LOOKALIKE_BACKEND=openvino|onnx|torch`; unset: the first of those that is installed. OpenVINO
  runs the default and every torch image method (openvino_model.py); ONNX Runtime runs the default
  only (torch methods then run in PyTorch); `torch` runs everything in PyTorch. On a GPU every
  model runs in PyTorch. A bad value stops only the commands that run a model, in one line.
- `--precision auto|int8|fp32` (`embed`; `select_precision`), else `LOOKALIKE_PRECISION`: `auto` lets OpenVINO use bfloat16
  where the CPU has it (AMX or AVX-512 BF16), except for the models listed in
  openvino_cpu.FP32_ONLY, and int8 where the CPU has AMX-INT8 or VNNI and the catalog's int8 model
  passed its check; `int8` quantises on the catalog's photos and checks (openvino_int8.py), using
  the int8 model only when it keeps the answers; `fp32` keeps float32 everywhere. ONNX Runtime and PyTorch on the CPU
  always run float32.
"""

from __future__ import annotations

import importlib.util

from core.settings import SettingError, settings

BACKENDS = ("openvino", "onnx", "torch")
PRECISIONS = ("auto", "int8", "fp32")
PACKAGES = {"openvino": "openvino", "onnx": "onnxruntime", "torch": "torch"}


class BackendError(SettingError):
    """A backend or precision setting that cannot be used (one line for the user)."""


def installed(backend: str) -> bool:
    return importlib.util.find_spec(PACKAGES[backend]) is not None


def chosen() -> str:
    """The CPU backend: `LOOKALIKE_BACKEND`, else the first installed; BackendError when unusable, or
    when the precision asked for (`--precision`, LOOKALIKE_PRECISION) is not one it knows."""
    precision()
    value = settings().backend
    if not value:
        return next((b for b in BACKENDS if installed(b)), "torch")
    if value not in BACKENDS:
        raise BackendError(f"LOOKALIKE_BACKEND must be openvino, onnx or torch, not {value!r}")
    if not installed(value):
        raise BackendError(f"LOOKALIKE_BACKEND={value}, but {PACKAGES[value]} is not installed")
    return value


_precision: str | None = None  # `--precision` in this process; None: LOOKALIKE_PRECISION


def select_precision(value: str | None) -> str:
    """Set the precision for this process (`--precision`); None keeps the current one."""
    global _precision
    if value is not None:
        if value not in PRECISIONS:
            raise BackendError(f"--precision must be auto, int8 or fp32, not {value!r}")
        _precision = value
    return precision()


def precision() -> str:
    """`--precision` when given in this process, else LOOKALIKE_PRECISION (how Ray workers get the driver's)."""
    value = _precision or settings().precision
    if value not in PRECISIONS:
        raise BackendError(f"LOOKALIKE_PRECISION must be auto, int8 or fp32, not {value!r}")
    return value


def for_method(name: str, runs_model: bool, kind: str, device: str) -> str | None:
    """The runtime a method's model runs on here (None: no model, e.g. colour histograms)."""
    if not runs_model:
        return None
    if device != "cpu" or kind != "image":
        return "torch"
    backend = chosen()
    if backend == "onnx" and name != "efficientnet_lite0":
        return "torch"  # ONNX Runtime runs the default only
    return backend


def method_precision(name: str, backend: str | None, device: str | None) -> str | None:
    """`bf16` or `fp32` for a method's model here (None: no model, or no backend or device for it)."""
    if backend is None or device is None:
        return None
    if device != "cpu":
        from core.methods import devices

        return short(devices.current().precision)
    if backend == "openvino":
        from core.methods import openvino_cpu

        return openvino_cpu.precision(name, precision())
    return "fp32"


def short(dtype: str) -> str:
    """`float32` -> `fp32`, `bfloat16` -> `bf16`, `float16` -> `fp16` (how precisions are shown)."""
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)


def summary() -> dict:
    """What the Methods page and `methods --json` show: backend, precision, the CPU and its bf16."""
    try:
        backend, problem = chosen(), None
    except BackendError as exc:
        backend, problem = None, str(exc)
    info = {
        "backend": backend,
        "problem": problem,
        "precision": None if problem else precision(),
        "cpu": None,
        "bf16": None,
    }
    if installed("openvino"):
        from core.methods import openvino_cpu

        info |= openvino_cpu.cpu()
    return info


def describe() -> str:
    """One line for people, e.g. `openvino, bf16 (CPU: Intel Xeon, has BF16)`."""
    info = summary()
    if info["problem"]:
        return info["problem"]
    bf16 = "" if info["bf16"] is None else (", bf16 where the CPU has it" if info["bf16"] else ", no bf16 on this CPU")
    return f"{info['backend']}, precision {info['precision']}{bf16 if info['backend'] == 'openvino' else ''}"
