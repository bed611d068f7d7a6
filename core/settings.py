"""Every setting Lookalike reads from the environment, read in this one place.

| variable | default | meaning |
|---|---|---|
| `LOOKALIKE_DB` | `data/catalog.db` | the catalog file (`--db` overrides it on the command line) |
| `LOOKALIKE_MODELS` | `<catalog folder>/models` | downloaded or exported model weights |
| `LOOKALIKE_THREADS` | every core this process may use (affinity, container quota) | threads a model may use |
| `LOOKALIKE_BACKEND` | first installed | `openvino`, `onnx` or `torch`: the CPU runtime (core/methods/backends.py) |
| `LOOKALIKE_PRECISION` | `auto` | `auto` or `fp32`: OpenVINO's precision on the CPU (`embed --precision` overrides it; Ray workers get the driver's) |
| `LOOKALIKE_HYBRID` | `efficientnet_lite0=0.8,color_hist=0.2` | the parts and weights of `hybrid` |
| `LOOKALIKE_DEVICE` | `auto` | `auto`, `cpu`, `cuda` or `mps`: where torch methods run |
| `LOOKALIKE_API_KEY` | none | a key the API (`serve`) asks for as `Authorization: Bearer KEY`; none and no keys file: no key asked |
| `LOOKALIKE_API_KEYS_FILE` | none | a file of API keys, one a line (blank lines and `#` comments skipped), besides `LOOKALIKE_API_KEY` |
| `LOOKALIKE_AUTOENCODER` | none | the autoencoder checkpoint a process without a catalog uses (a Ray worker; the driver sets it) |
| `LOOKALIKE_COMPACT_SHARE` | `0.05` | the share of a method's vectors changed since its Annoy index was built past which the index is rebuilt (compacted) in the background (core/search/delta.py) |
| `HF_HUB_OFFLINE` | off | never ask the Hugging Face hub; load from local folders and the cache only |

`settings()` reads them once per process; `reload()` reads them again (tests that change them).
A value that cannot be used is reported when it is used, never when the settings are read, so a
bad `LOOKALIKE_THREADS` or `LOOKALIKE_DEVICE` breaks neither `--help` nor the commands that do
not need it: `threads` raises `SettingError` naming the variable, `core.methods.devices` checks the
device and `core.methods.hybrid` the weights the same way.
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


class SettingError(ValueError):
    """An environment variable whose value Lookalike cannot use; the message names it, in one line."""


@dataclass(frozen=True)
class Settings:
    db: Path
    models: Path | None
    threads_text: str | None  # LOOKALIKE_THREADS as given; `threads` checks it
    backend: str  # LOOKALIKE_BACKEND as given ("" = the default); core.methods.backends.chosen() checks it
    hybrid: str
    device: str
    offline: bool
    precision: str = "auto"  # LOOKALIKE_PRECISION as given; core.methods.backends.precision() checks it
    api_key: str | None = None
    api_keys_file: Path | None = None
    autoencoder: Path | None = None
    compact_share_text: str | None = None  # LOOKALIKE_COMPACT_SHARE as given; `compact_share` checks it

    @property
    def threads(self) -> int:
        """Threads a model may use: LOOKALIKE_THREADS, else every core this process may use;
        SettingError (naming the variable) when it is not a whole number of at least 1."""
        text = (self.threads_text or "").strip()
        if not text:
            return available_cores()
        try:
            value = int(text)
        except ValueError:
            raise SettingError(f"LOOKALIKE_THREADS must be a whole number of at least 1, not {text!r}") from None
        if value < 1:
            raise SettingError(f"LOOKALIKE_THREADS must be a whole number of at least 1, not {text!r}")
        return value

    @property
    def compact_share(self) -> float:
        """LOOKALIKE_COMPACT_SHARE (default 0.05); SettingError unless a number above 0 and at most 1."""
        text = (self.compact_share_text or "").strip()
        try:
            value = float(text) if text else 0.05
        except ValueError:
            value = math.nan
        if not 0 < value <= 1:
            raise SettingError(
                f"LOOKALIKE_COMPACT_SHARE must be a share above 0 and at most 1 (0.05 = 5%), not {text!r}"
            )
        return value


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


@cache
def settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    env = os.environ
    return Settings(
        db=Path(env.get("LOOKALIKE_DB") or Path("data") / "catalog.db"),
        models=Path(env["LOOKALIKE_MODELS"]) if env.get("LOOKALIKE_MODELS") else None,
        threads_text=env.get("LOOKALIKE_THREADS"),
        backend=env.get("LOOKALIKE_BACKEND", "").strip().lower(),
        hybrid=env.get("LOOKALIKE_HYBRID") or DEFAULT_HYBRID,
        device=(env.get("LOOKALIKE_DEVICE") or "auto").strip().lower(),
        precision=(env.get("LOOKALIKE_PRECISION") or "auto").strip().lower(),
        offline=env.get("HF_HUB_OFFLINE", "0").strip().lower() not in _FALSE,
        api_key=env.get("LOOKALIKE_API_KEY", "").strip() or None,
        api_keys_file=Path(env["LOOKALIKE_API_KEYS_FILE"]) if env.get("LOOKALIKE_API_KEYS_FILE") else None,
        autoencoder=Path(env["LOOKALIKE_AUTOENCODER"]) if env.get("LOOKALIKE_AUTOENCODER") else None,
        compact_share_text=env.get("LOOKALIKE_COMPACT_SHARE"),
    )


def reload() -> Settings:
    """Read the environment again (after a test or the app changed it)."""
    settings.cache_clear()
    return settings()
