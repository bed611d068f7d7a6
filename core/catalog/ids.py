"""Item ids: one spelling per id, no control or invisible characters.

An id read from a file is normalised (`normalise`): Unicode NFC, so "Robe-é" typed with a combining
accent and with a precomposed one are one item; any space character (no-break space, thin space...)
becomes a plain space; spaces and invisible characters (zero-width space, byte-order mark...) at
either end are removed. An id that still holds a control character (NUL, ESC, newline, U+0085),
a line or paragraph separator (U+2028, U+2029) or an invisible formatting one (zero-width space
inside it, right-to-left override) is refused with the row number (`problem`). Ids stored before
these rules are shown through `core.files.invisible.visible`, which escapes such characters.
"""

from __future__ import annotations

import unicodedata

from core.files.invisible import describe, first_hidden, visible

_EDGE = " \t\r\n\f\v\u200b\u200c\u200d\u2060\ufeff"


def normalise(item_id: str) -> str:
    """The one spelling of an id: NFC, every space character a plain space, trimmed of spaces and
    invisible characters at both ends."""
    text = unicodedata.normalize("NFC", item_id)
    text = "".join(" " if unicodedata.category(c) == "Zs" else c for c in text)
    return text.strip(_EDGE)


def problem(item_id: str) -> str | None:
    """Why a (normalised) id cannot be an item's id, or None when it can."""
    bad = first_hidden(item_id)
    if bad is None:
        return None
    return f"id '{visible(item_id)}' holds a control or invisible character ({describe(bad)})"
