"""What OpenVINO's CPU plugin can do here, and the precision that follows for a method (no state:
`core/methods/backends.py` holds the user's choice, `openvino_model.py` compiles with the answer)."""

from __future__ import annotations

from functools import cache

import openvino as ov

# Methods whose bfloat16 vectors miss cosine 0.99 (min) / 0.999 (mean) to float32 on the 4,000
# shared photos; they run float32 whatever the CPU (docs/methods.md). None so far.
FP32_ONLY: frozenset[str] = frozenset()


@cache
def runtime() -> ov.Core:
    return ov.Core()


def version() -> str:
    """OpenVINO's release, e.g. 2026.4.1."""
    return ov.get_version().split("-")[0]


def capabilities() -> list[str]:
    """What the CPU plugin can do here, e.g. ['BF16', 'FP32', 'INT8', ...]."""
    return list(runtime().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def cpu() -> dict:
    """The CPU's name and whether OpenVINO runs bfloat16 on it."""
    return {"cpu": runtime().get_property("CPU", "FULL_DEVICE_NAME"), "bf16": "BF16" in capabilities()}


def precision(method: str, requested: str) -> str:
    """`bf16` or `fp32` for `method` on this CPU (`requested`: auto|int8|fp32; int8 models compute
    what is not quantised at this precision too)."""
    if requested in ("auto", "int8") and method not in FP32_ONLY and "BF16" in capabilities():
        return "bf16"
    return "fp32"
