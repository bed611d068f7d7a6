"""URL helpers every layer may use: a photo's file name in a URL, and a URL fit to show."""

from __future__ import annotations

import os
from urllib.parse import urlparse, urlsplit, urlunsplit


def url_basename(url: str) -> str:
    """The file name a URL ends with ('https://cdn/x/123.jpg?w=1' -> '123.jpg')."""
    return os.path.basename(urlparse(url).path)


def strip_credentials(url: str) -> str:
    """A URL without its `user:password@` part, fit to show, log, store or export."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
