"""Small JPEG thumbnails of catalog photos, cached on disk beside the catalog."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

from core.catalog.db import Catalog
from core.catalog.images import ImageError, load_rgb
from core.files.atomic import atomic_path

SIZE = 256


def thumbnail(path: str | Path | None, cache_dir: Path, size: int = SIZE) -> Path | None:
    """The cached thumbnail of a photo (made on first use); None when the photo is unreadable."""
    if not path:
        return None
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return None
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{size}".encode()).hexdigest()
    target = cache_dir / key[:2] / f"{key}.jpg"
    if target.exists():
        return target
    try:
        image = load_rgb(path)
    except ImageError:
        return None
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, suffix=".jpg") as tmp:
        image.save(tmp, "JPEG", quality=85)
    return target


def catalog_thumbnail(db: Catalog, path: str | None) -> Path | None:
    """The thumbnail of a photo the catalog records as usable; None for any other path.

    The app shows photos through this only, so it never reads a file outside the photos the
    user imported, whatever path reaches it.
    """
    if (
        not path
        or db.execute("SELECT 1 FROM images WHERE path = ? AND status = 'ok' LIMIT 1", [str(path)]).fetchone() is None
    ):
        return None
    return thumbnail(path, db.thumbnails_dir)
