"""Where Lookalike keeps its files: catalog database, data folder, model weights."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = Path("data") / "catalog.db"


def default_db_path() -> Path:
    """`$LOOKALIKE_DB`, else `data/catalog.db` relative to the working directory."""
    return Path(os.environ.get("LOOKALIKE_DB") or DEFAULT_DB)


def data_dir(db_path: str | Path) -> Path:
    """The data folder of a catalog: indices, checkpoints and thumbnails live beside the db."""
    return Path(db_path).resolve().parent


def models_dir(db_path: str | Path | None = None) -> Path:
    """Folder for downloaded model weights: `$LOOKALIKE_MODELS`, else `<data folder>/models`."""
    env = os.environ.get("LOOKALIKE_MODELS")
    if env:
        return Path(env)
    return data_dir(db_path or default_db_path()) / "models"
