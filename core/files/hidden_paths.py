"""Messages fit to leave the server (the app's browser, the API's clients): the server's folders cut out."""

from __future__ import annotations

from pathlib import Path


def without_paths(text: str, *paths: Path | str) -> str:
    """`text` with each of `paths` (as given and resolved; longest first) replaced by its last part's
    name: '/srv/data/models/vgg16' -> 'models/vgg16' when the models folder is one of `paths`."""
    spelt = {spelling: Path(path).name for path in paths for spelling in (str(Path(path).resolve()), str(path))}
    for spelling in sorted(spelt, key=len, reverse=True):
        if spelling not in ("", "."):
            text = text.replace(spelling, spelt[spelling])
    return text
