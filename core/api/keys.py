"""API keys: read from the settings (one key, and/or a file of keys), checked in constant time."""

from __future__ import annotations

import hmac

from core.settings import settings


class KeysError(ValueError):
    """A keys file that cannot be read, in one line."""


def load_keys() -> tuple[str, ...]:
    """`LOOKALIKE_API_KEY` and the lines of `LOOKALIKE_API_KEYS_FILE` (blank lines and # comments
    skipped); empty when neither is set, which means the API asks for no key."""
    found = [settings().api_key] if settings().api_key else []
    path = settings().api_keys_file
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise KeysError(f"cannot read the API keys file {path}: {exc}") from None
        found += [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not found:
            raise KeysError(f"the API keys file {path} holds no key")
    return tuple(dict.fromkeys(found))


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header (None when absent or another scheme)."""
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def key_matches(given: str | None, keys: tuple[str, ...]) -> bool:
    """Whether `given` is one of `keys`, comparing every key in constant time."""
    if given is None:
        return False
    candidate = given.encode("utf-8")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key.encode("utf-8"))
    return matched
