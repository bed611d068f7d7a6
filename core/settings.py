"""Every setting Lookalike reads from the environment, read in this one place.

| variable | default | meaning |
|---|---|---|
| `LOOKALIKE_DB` | `data/catalog.db` | the catalog file (`--db` overrides it on the command line) |
| `LOOKALIKE_MODELS` | `<catalog folder>/models` | downloaded or exported model weights |
| `LOOKALIKE_THREADS` | every core | threads a model may use |
| `LOOKALIKE_BACKEND` | first installed | `openvino`, `onnx` or `torch`: the CPU runtime (core/methods/backends.py) |
| `LOOKALIKE_HYBRID` | `efficientnet_lite0=0.8,color_hist=0.2` | the parts and weights of `hybrid` |
| `LOOKALIKE_DEVICE` | `auto` | `auto`, `cpu`, `cuda` or `mps`: where torch methods run |
| `HF_HUB_OFFLINE` | off | never ask the Hugging Face hub; load from local folders and the cache only |

`settings()` reads them once per process; `reload()` reads them again (tests that change them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DEFAULT_METHOD = "efficientnet_lite0"
DEFAULT_HYBRID = "efficientnet_lite0=0.8,color_hist=0.2"
_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    db: Path
    models: Path | None
    threads: int
    backend: str  # as written; "" = the default
    hybrid: str
    device: str
    offline: bool


def _threads(text: str | None) -> int:
    try:
        return max(1, int(text)) if text else max(1, os.cpu_count() or 1)
    except ValueError:
        raise ValueError(f"LOOKALIKE_THREADS must be a whole number, not {text!r}") from None


@cache
def settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    env = os.environ
    return Settings(
        db=Path(env.get("LOOKALIKE_DB") or Path("data") / "catalog.db"),
        models=Path(env["LOOKALIKE_MODELS"]) if env.get("LOOKALIKE_MODELS") else None,
        threads=_threads(env.get("LOOKALIKE_THREADS")),
        backend=env.get("LOOKALIKE_BACKEND", "").strip().lower(),  # checked where used: backends.chosen()
        hybrid=env.get("LOOKALIKE_HYBRID") or DEFAULT_HYBRID,
        device=(env.get("LOOKALIKE_DEVICE") or "auto").strip().lower(),
        offline=env.get("HF_HUB_OFFLINE", "0").strip().lower() not in _FALSE,
    )


def reload() -> Settings:
    """Read the environment again (after a test or the app changed it)."""
    settings.cache_clear()
    return settings()
