"""Characters a person cannot see or that steer a terminal: finding them, naming them, showing them escaped."""

from __future__ import annotations

import unicodedata

# Control (NUL, ESC, newline, U+0085), formatting (zero-width space, byte-order mark, right-to-left
# override), line and paragraph separators (U+2028, U+2029) and lone surrogates.
_HIDDEN = ("Cc", "Cf", "Zl", "Zp", "Cs")
_NAMES = {
    "\x00": "NUL",
    "\x1b": "ESC",
    "\n": "newline",
    "\r": "carriage return",
    "\t": "tab",
    "\ufeff": "byte-order mark",
}


def hidden(char: str) -> bool:
    """True for a control, formatting (invisible, bidirectional) or line/paragraph separator character."""
    return unicodedata.category(char) in _HIDDEN


def first_hidden(text: str) -> str | None:
    """The first hidden character of `text`, or None."""
    if text.isprintable():  # the common case, in C: every hidden category is also unprintable
        return None
    return next((c for c in text if hidden(c)), None)


def describe(char: str) -> str:
    """`U+001B ESC`, `U+202E RIGHT-TO-LEFT OVERRIDE`: a character named for people."""
    name = _NAMES.get(char) or unicodedata.name(char, "control character")
    return f"U+{ord(char):04X} {name}"


def visible(text: str, keep: str = "") -> str:
    """`text` with its hidden characters (except those in `keep`) shown as escapes (`\\x1b`, `\\u202e`)."""
    if first_hidden(text) is None:
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if hidden(c) and c not in keep else c for c in text)
