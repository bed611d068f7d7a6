"""Every setting Lookalike reads from the environment, read in this one place.

| variable | default | meaning |
|---|---|---|
| `LOOKALIKE_DB` | `data/catalog.db` | the catalog file (`--db` overrides it on the command line) |
| `LOOKALIKE_MODELS` | `<catalog folder>/models` | downloaded or exported model weights |
| `LOOKALIKE_CACHE` | `$XDG_CACHE_HOME/lookalike`, else `~/.cache/lookalike` | converted and compiled models, shared by every catalog of this user (core/methods/model_cache.py); safe to delete |
| `LOOKALIKE_THREADS` | every core this process may use (affinity, container quota) | threads a model may use, 1 to 4,096 |
| `LOOKALIKE_BACKEND` | first installed | `openvino`, `onnx` or `torch`: the CPU runtime (core/methods/backends.py) |
| `LOOKALIKE_PRECISION` | `auto` | `auto`, `int8` or `fp32`: OpenVINO's precision on the CPU (`embed --precision` overrides it; Ray workers get the driver's) |
| `LOOKALIKE_HYBRID` | `efficientnet_lite0=0.8,color_hist=0.2` | the parts and weights of `hybrid` |
| `LOOKALIKE_DEVICE` | `auto` | `auto`, `cpu`, `cuda` or `mps`: where torch methods run |
| `LOOKALIKE_API_KEY` | none | a key the API (`serve`) asks for as `Authorization: Bearer KEY`; none and no keys file: no key asked |
| `LOOKALIKE_API_PHOTOS` | half the cores, at least 1 | uploaded photos the API decodes and searches at once, 1 to 64 (the others wait their turn) |
| `LOOKALIKE_API_KEYS_FILE` | none | a file of API keys, one a line (blank lines and `#` comments skipped), besides `LOOKALIKE_API_KEY` |
| `LOOKALIKE_AUTOENCODER` | none | the autoencoder checkpoint a process without a catalog uses (a Ray worker; the driver sets it) |
| `LOOKALIKE_MODEL_CACHE` | `4` | loaded models a process keeps; one more loaded drops the least recently used (core/search/caches.py) |
| `LOOKALIKE_GAINS` | `good=3,close=1,wrong=0` | the gain of each graded verdict in nDCG (core/curation/grades.py) |
| `LOOKALIKE_CLOSE_SHARE` | `0.5` | how much of a hit a *close* verdict counts for in precision@k (0: none, 1: a full hit) |
| `LOOKALIKE_MIN_JUDGED` | `0.8` | the judged share of a method's top k below which its figures are marked not comparable |
| `LOOKALIKE_CURATOR` | none | a labeller whose latest verdict on a pair counts over everyone else's (else the latest verdict counts) |
| `LOOKALIKE_COMPACT_SHARE` | `0.05` | the share of a method's vectors changed since its Annoy index was built past which the index is rebuilt (compacted) in the background (core/search/delta.py) |
| `LOOKALIKE_BUILD_NICE` | `10` | how far an index build (`index`, a compaction, a sync's rebuild) gives way to searches on a busy machine: its nice value, 0 (not at all) to 19 (it waits for idle cores); Linux (core/priority.py) |
| `LOOKALIKE_AUTH` | none | `oidc` (Streamlit's sign-in with an OpenID Connect provider, set in `.streamlit/secrets.toml`) or `proxy` (a signing-in reverse proxy's `X-Forwarded-Email`); none: one user, on this computer only (docs/team.md) |
| `LOOKALIKE_ROLES_FILE` | none | who may do what with sign-in on: one `email,role` or `*@domain,role` a line (roles: viewer, labeller, curator, admin); nobody else gets in |
| `LOOKALIKE_TRUSTED_PROXIES` | none | addresses or networks (`10.0.0.5`, `10.0.0.0/24`) whose `X-Forwarded-Email` the app believes when it listens beyond this computer |
| `LOOKALIKE_ADMIN_CONTACT` | the admins of the roles file | whom the app tells a person without access to ask (an email, or a line of text) |
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
MAX_MODEL_CACHE = 64  # loaded models a process may keep
MAX_API_PHOTOS = 64
AUTH_MODES = ("oidc", "proxy")
DEFAULT_BUILD_NICE = 10  # index builds give way to searches, without waiting for idle cores (docs/benchmarks.md)
LOWEST_PRIORITY = 19  # the highest nice value
MAX_THREADS = 4096  # LOOKALIKE_THREADS' bound: more than any CPU has, and what every runtime accepts


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
    model_cache_text: str | None = None  # LOOKALIKE_MODEL_CACHE as given; `model_cache` checks it
    gains: str | None = None  # LOOKALIKE_GAINS as given; core.curation.grades checks these three
    close_share: str | None = None
    min_judged: str | None = None
    curator: str | None = None
    api_photos_text: str | None = None  # LOOKALIKE_API_PHOTOS as given; `api_photos` checks it
    compact_share_text: str | None = None  # LOOKALIKE_COMPACT_SHARE as given; `compact_share` checks it
    build_nice_text: str | None = None  # LOOKALIKE_BUILD_NICE as given; `build_nice` checks it
    cache: Path = Path.home() / ".cache" / "lookalike"  # LOOKALIKE_CACHE
    auth_text: str | None = None  # LOOKALIKE_AUTH as given; `auth` checks it
    roles_file: Path | None = None
    trusted_proxies_text: str | None = None  # core.team.proxy.trusted_proxies checks it
    admin_contact: str | None = None

    @property
    def auth(self) -> str | None:
        """How people sign in: "oidc", "proxy", or None (one user, on this computer only);
        SettingError naming LOOKALIKE_AUTH for anything else."""
        text = (self.auth_text or "").strip().lower()
        if text in ("", "none", "off"):
            return None
        if text not in AUTH_MODES:
            raise SettingError(f"LOOKALIKE_AUTH must be oidc or proxy (or unset), not {text[:40]!r}")
        return text

    @property
    def api_photos(self) -> int:
        """Photos the API decodes at once: LOOKALIKE_API_PHOTOS, else half the cores (at least 1);
        SettingError (naming the variable) unless a whole number from 1 to MAX_API_PHOTOS."""
        text = (self.api_photos_text or "").strip()
        if not text:
            return max(1, available_cores() // 2)
        return _whole("LOOKALIKE_API_PHOTOS", text, MAX_API_PHOTOS)

    @property
    def threads(self) -> int:
        """Threads a model may use: LOOKALIKE_THREADS, else every core this process may use;
        SettingError (naming the variable) when it is not a whole number of at least 1."""
        text = (self.threads_text or "").strip()
        if not text:
            return available_cores()
        return _whole("LOOKALIKE_THREADS", text, MAX_THREADS)

    @property
    def model_cache(self) -> int:
        """How many loaded models a process keeps: LOOKALIKE_MODEL_CACHE, else 4; SettingError
        (naming the variable) unless a whole number from 1 to MAX_MODEL_CACHE."""
        text = (self.model_cache_text or "").strip()
        if not text:
            return 4
        return _whole("LOOKALIKE_MODEL_CACHE", text, MAX_MODEL_CACHE)

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

    @property
    def build_nice(self) -> int:
        """The nice value index builds run at: LOOKALIKE_BUILD_NICE, else 10; SettingError (naming the
        variable) unless a whole number from 0 to 19."""
        text = (self.build_nice_text or "").strip()
        if not text:
            return DEFAULT_BUILD_NICE
        return _whole("LOOKALIKE_BUILD_NICE", text, LOWEST_PRIORITY, least=0)


def _whole(variable: str, text: str, most: int, least: int = 1) -> int:
    """A whole number from `least` to `most` set by `variable`; SettingError naming it otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if not least <= value <= most:
        raise SettingError(f"{variable} must be a whole number from {least} to {most:,}, not {text[:40]!r}")
    return value


def _cgroup_quota(root: Path) -> float | None:
    """CPUs a container's CPU quota allows (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us`), None without one."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        v1_quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        return None if v1_quota <= 0 else v1_quota / int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None


def available_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may use: its CPU affinity, capped by a container's CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota(cgroup)
    return max(1, min(cores, math.ceil(quota))) if quota else max(1, cores)


_chosen_db: Path | None = None  # the catalog this process was told to work on (`--db`)


def use_db(path: str | Path) -> Settings:
    """Work on the catalog at `path` in this process (the command line's `--db`): everything that finds
    a catalog's folders without opening it (the models folder of `download-weights` or `methods` before
    the catalog exists) then finds this one's, not `LOOKALIKE_DB`'s."""
    global _chosen_db
    _chosen_db = Path(path)
    settings.cache_clear()
    return settings()


@cache
def settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    env = os.environ
    return Settings(
        db=_chosen_db or Path(env.get("LOOKALIKE_DB") or Path("data") / "catalog.db"),
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
        model_cache_text=env.get("LOOKALIKE_MODEL_CACHE"),
        gains=env.get("LOOKALIKE_GAINS"),
        close_share=env.get("LOOKALIKE_CLOSE_SHARE"),
        min_judged=env.get("LOOKALIKE_MIN_JUDGED"),
        curator=env.get("LOOKALIKE_CURATOR", "").strip() or None,
        api_photos_text=env.get("LOOKALIKE_API_PHOTOS"),
        cache=_cache_folder(env),
        compact_share_text=env.get("LOOKALIKE_COMPACT_SHARE"),
        build_nice_text=env.get("LOOKALIKE_BUILD_NICE"),
        auth_text=env.get("LOOKALIKE_AUTH"),
        roles_file=Path(env["LOOKALIKE_ROLES_FILE"]) if env.get("LOOKALIKE_ROLES_FILE") else None,
        trusted_proxies_text=env.get("LOOKALIKE_TRUSTED_PROXIES"),
        admin_contact=env.get("LOOKALIKE_ADMIN_CONTACT", "").strip() or None,
    )


def _cache_folder(env) -> Path:
    """LOOKALIKE_CACHE, else the user's cache folder (XDG_CACHE_HOME or ~/.cache) / lookalike."""
    if env.get("LOOKALIKE_CACHE"):
        return Path(env["LOOKALIKE_CACHE"]).expanduser()
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "lookalike"


def reload() -> Settings:
    """Read the environment again (after a test or the app changed it), forgetting `use_db`."""
    global _chosen_db
    _chosen_db = None
    settings.cache_clear()
    return settings()
