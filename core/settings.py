"""Every setting Lookalike reads from the environment, read in this one place.

| variable | default | meaning |
|---|---|---|
| `LOOKALIKE_DB` | `data/catalog.db` | the catalog file (`--db` overrides it on the command line) |
| `LOOKALIKE_MODELS` | `<catalog folder>/models` | downloaded or exported model weights |
| `LOOKALIKE_THREADS` | every core this process may use (affinity, container quota) | threads a model may use |
| `LOOKALIKE_BACKEND` | first installed | `openvino`, `onnx` or `torch`: the CPU runtime (core/methods/backends.py) |
| `LOOKALIKE_HYBRID` | `efficientnet_lite0=0.8,color_hist=0.2` | the parts and weights of `hybrid` |
| `LOOKALIKE_DEVICE` | `auto` | `auto`, `cpu`, `cuda` or `mps`: where torch methods run |
| `LOOKALIKE_API_KEY` | none | a key the API (`serve`) asks for as `Authorization: Bearer KEY`; none and no keys file: no key asked |
| `LOOKALIKE_API_KEYS_FILE` | none | a file of API keys, one a line (blank lines and `#` comments skipped), besides `LOOKALIKE_API_KEY` |
| `HF_HUB_OFFLINE` | off | never ask the Hugging Face hub; load from local folders and the cache only |

`settings()` reads them once per process; `reload()` reads them again (tests that change them).
"""

from __future__ import annotations

import math
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
    api_key: str | None = None
    api_keys_file: Path | None = None


def _cgroup_quota(root: Path) -> float | None:
    """CPUs a container's CPU quota allows (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us`), None without one."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        return None if quota <= 0 else quota / int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None


def available_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may use: its CPU affinity, capped by a container's CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota(cgroup)
    return max(1, min(cores, math.ceil(quota))) if quota else max(1, cores)


def _threads(text: str | None) -> int:
    try:
        return max(1, int(text)) if text else available_cores()
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
        api_key=env.get("LOOKALIKE_API_KEY", "").strip() or None,
        api_keys_file=Path(env["LOOKALIKE_API_KEYS_FILE"]) if env.get("LOOKALIKE_API_KEYS_FILE") else None,
    )


def reload() -> Settings:
    """Read the environment again (after a test or the app changed it)."""
    settings.cache_clear()
    return settings()
