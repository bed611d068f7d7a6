"""Item ids: one spelling per id, no control or invisible characters, shown escaped when they have some.

An id read from a file is normalised (`normalise`): Unicode NFC, so "Robe-é" typed with a combining
accent and with a precomposed one are one item; any space character (no-break space, thin space...)
becomes a plain space; spaces and invisible characters (zero-width space, byte-order mark...) at
either end are removed. An id that still holds a control character (NUL, ESC, newline, U+0085),
a line or paragraph separator (U+2028, U+2029) or an invisible formatting one (zero-width space
inside it, right-to-left override) is refused with the row number (`problem`). Ids stored before
these rules, and any other text printed to a terminal or written to an export, go through
`visible`, which shows such characters as escapes (`\\x1b`, `\\u202e`) instead of sending them.
"""

from __future__ import annotations

import unicodedata

# Characters that a person cannot see or that steer a terminal or the text direction.
_HIDDEN = ("Cc", "Cf", "Zl", "Zp", "Cs")
_EDGE = " \t\r\n\f\v\u200b\u200c\u200d\u2060\ufeff"
_NAMES = {"\x00": "NUL", "\x1b": "ESC", "\n": "newline", "\r": "carriage return", "\t": "tab"}


def hidden(char: str) -> bool:
    """True for a control, formatting (invisible, bidirectional) or line/paragraph separator character."""
    return unicodedata.category(char) in _HIDDEN


def normalise(item_id: str) -> str:
    """The one spelling of an id: NFC, every space character a plain space, trimmed of spaces and
    invisible characters at both ends."""
    text = unicodedata.normalize("NFC", item_id)
    text = "".join(" " if unicodedata.category(c) == "Zs" else c for c in text)
    return text.strip(_EDGE)


def describe(char: str) -> str:
    """`U+001B ESC`, `U+202E RIGHT-TO-LEFT OVERRIDE`: a character named for people."""
    name = _NAMES.get(char) or unicodedata.name(char, "control character")
    return f"U+{ord(char):04X} {name}"


def problem(item_id: str) -> str | None:
    """Why a (normalised) id cannot be an item's id, or None when it can."""
    bad = next((c for c in item_id if hidden(c)), None)
    if bad is None:
        return None
    return f"id '{visible(item_id)}' holds a control or invisible character ({describe(bad)})"


def visible(text: str) -> str:
    """`text` with control, invisible and line-separator characters shown as escapes."""
    if not any(hidden(c) for c in text):
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if hidden(c) else c for c in text)
