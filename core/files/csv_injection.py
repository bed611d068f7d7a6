"""Spreadsheet formula injection: neutralise text cells of exported CSVs, undo it on import.

OWASP's rule: a text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is
run as a formula by Excel, LibreOffice and Google Sheets, so it is written with a single quote
in front (`'=1+1`), which spreadsheets show as text. Numbers are written as numbers and never
touched. A cell that already starts with a quote followed by one of those characters gets one
more quote, so `restore` gives back exactly what was exported.
"""

from __future__ import annotations

from typing import overload

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str | None) -> str | None:
    """A text cell made safe to open in a spreadsheet (None and '' unchanged)."""
    if text and (text.startswith(TRIGGERS) or (text.startswith("'") and text.lstrip("'").startswith(TRIGGERS))):
        return "'" + text
    return text


@overload
def restore(text: str) -> str: ...
@overload
def restore(text: str | None) -> str | None: ...
def restore(text: str | None) -> str | None:
    """Undo `neutralise` on a cell read back from one of our CSVs."""
    if text and text.startswith("'") and text.lstrip("'").startswith(TRIGGERS):
        return text[1:]
    return text
