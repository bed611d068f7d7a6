"""Every setting Lookalike reads from the environment, read in this one place.

| variable | default | meaning |
|---|---|---|
| `LOOKALIKE_DB` | `data/catalog.db` | the catalog file (`--db` overrides it on the command line) |
| `LOOKALIKE_MODELS` | `<catalog folder>/models` | downloaded or exported model weights |
| `LOOKALIKE_THREADS` | every core | threads a model may use |
| `LOOKALIKE_BACKEND` | `onnx` | `onnx` or `torch`: how the default method runs on the CPU |
| `LOOKALIKE_HYBRID` | `efficientnet_lite0=0.8,color_hist=0.2` | the parts and weights of `hybrid` |
| `LOOKALIKE_DEVICE` | `auto` | `auto`, `cpu`, `cuda` or `mps`: where torch methods run |
| `HF_HUB_OFFLINE` | off | never ask the Hugging Face hub; load from local folders and the cache only |

`settings()` reads them once per process; `reload()` reads them again (tests that change them).
A value that cannot be used is reported when it is used, never when the settings are read, so a
bad `LOOKALIKE_THREADS` or `LOOKALIKE_DEVICE` breaks neither `--help` nor the commands that do
not need it: `threads` raises `SettingError` naming the variable, `core.methods.devices` checks the
device and `core.methods.hybrid` the weights the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DEFAULT_METHOD = "efficientnet_lite0"
DEFAULT_HYBRID = "efficientnet_lite0=0.8,color_hist=0.2"
_FALSE = ("", "0", "false", "no", "off")


class SettingError(ValueError):
    """An environment variable whose value Lookalike cannot use; the message names it, in one line."""


@dataclass(frozen=True)
class Settings:
    db: Path
    models: Path | None
    threads_text: str | None  # LOOKALIKE_THREADS as given; `threads` checks it
    backend: str
    hybrid: str
    device: str
    offline: bool

    @property
    def threads(self) -> int:
        """Threads a model may use: LOOKALIKE_THREADS, else every core; SettingError when it is not a number."""
        text = (self.threads_text or "").strip()
        if not text:
            return max(1, os.cpu_count() or 1)
        try:
            value = int(text)
        except ValueError:
            raise SettingError(f"LOOKALIKE_THREADS must be a whole number of at least 1, not {text!r}") from None
        if value < 1:
            raise SettingError(f"LOOKALIKE_THREADS must be a whole number of at least 1, not {text!r}")
        return value


@cache
def settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    env = os.environ
    backend = env.get("LOOKALIKE_BACKEND", "onnx").strip().lower() or "onnx"
    if backend not in ("onnx", "torch"):
        raise ValueError(f"LOOKALIKE_BACKEND must be onnx or torch, not {backend!r}")
    return Settings(
        db=Path(env.get("LOOKALIKE_DB") or Path("data") / "catalog.db"),
        models=Path(env["LOOKALIKE_MODELS"]) if env.get("LOOKALIKE_MODELS") else None,
        threads_text=env.get("LOOKALIKE_THREADS"),
        backend=backend,
        hybrid=env.get("LOOKALIKE_HYBRID") or DEFAULT_HYBRID,
        device=(env.get("LOOKALIKE_DEVICE") or "auto").strip().lower(),
        offline=env.get("HF_HUB_OFFLINE", "0").strip().lower() not in _FALSE,
    )


def reload() -> Settings:
    """Read the environment again (after a test or the app changed it)."""
    settings.cache_clear()
    return settings()
