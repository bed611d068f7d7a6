"""API keys: read from the settings (one key, and/or a file of keys), checked in constant time."""

from __future__ import annotations

import hmac
import os
import stat
from pathlib import Path

from core.settings import settings

MAX_KEYS_FILE_BYTES = 1024 * 1024


class KeysError(ValueError):
    """A keys file that cannot be read, in one line."""


def load_keys() -> tuple[str, ...]:
    """`LOOKALIKE_API_KEY` and the lines of `LOOKALIKE_API_KEYS_FILE` (blank lines and # comments
    skipped); empty when neither is set, which means the API asks for no key."""
    found = [key] if (key := settings().api_key) else []
    path = settings().api_keys_file
    if path is not None:
        try:
            lines = _read_keys_file(path).decode("utf-8-sig").splitlines()  # a byte-order mark is no key's
        except (OSError, UnicodeDecodeError) as exc:
            raise KeysError(f"cannot read the API keys file {path}: {exc}") from None
        found += [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not found:
            raise KeysError(f"the API keys file {path} holds no key")
    return tuple(dict.fromkeys(found))


def _read_keys_file(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_KEYS_FILE_BYTES; a FIFO, device or folder is refused
    before it is opened for reading (so start-up never hangs on it)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise KeysError(f"the API keys file {path} is not a regular file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # swapped for a FIFO since: no hang
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise KeysError(f"the API keys file {path} is not a regular file")
        data = handle.read(MAX_KEYS_FILE_BYTES + 1)
    if len(data) > MAX_KEYS_FILE_BYTES:
        raise KeysError(f"the API keys file {path} is over {MAX_KEYS_FILE_BYTES // 1024} KB: is it the right file?")
    return data


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header (None when absent or another scheme)."""
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def key_matches(given: str | None, keys: tuple[str, ...]) -> bool:
    """Whether `given` is one of `keys`, comparing every key's UTF-8 bytes in constant time. `given` is a
    header's value as HTTP servers hand it over (its bytes read as Latin-1), so a key sent as UTF-8
    matches and the same key sent as Latin-1 bytes does not."""
    if given is None:
        return False
    try:
        candidate = given.encode("latin-1")  # the bytes that came over the wire
    except UnicodeEncodeError:  # not from a header: text the caller typed
        candidate = given.encode("utf-8")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key.encode("utf-8"))
    return matched
