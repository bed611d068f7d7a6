"""Small choices the app remembers on this computer (such as the labeller's name), in a JSON file
beside the catalog, written atomically so a crash leaves the old file or the new one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from core.files.atomic import atomic_text_writer

log = logging.getLogger(__name__)

FILE_NAME = "app-preferences.json"
MAX_BYTES = 64 * 1024  # a bigger file is not ours: ignored


def preferences_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / FILE_NAME


def load_preferences(data_dir: str | Path) -> dict[str, str]:
    """The remembered text values; empty when the file is absent, too big or unreadable (logged)."""
    path = preferences_path(data_dir)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ValueError(f"over {MAX_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring app preferences %s: %s", path, exc)
        return {}
    if not isinstance(data, dict):
        log.warning("ignoring app preferences %s: not a JSON object", path)
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, str)}


def remember(data_dir: str | Path, key: str, value: str) -> None:
    """Store one text value, keeping the others."""
    data = {**load_preferences(data_dir), key: value}
    with atomic_text_writer(preferences_path(data_dir)) as handle:
        json.dump(data, handle, ensure_ascii=False, indent=1, sort_keys=True)
