"""Checks on a CSV header before any row is read: too many columns, a name twice, invisible characters."""

from __future__ import annotations

from collections.abc import Sequence

from core.files.invisible import describe, first_hidden, visible

MAX_COLUMNS = 1000  # far above any product or listings file; a wider header is a wrong file


def header_problem(header: Sequence[str]) -> str | None:
    """Why a header cannot be read as one (None when it can), in one line naming the column."""
    if len(header) > MAX_COLUMNS:
        return f"{len(header):,} columns in the header, more than the {MAX_COLUMNS:,} Lookalike reads"
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        bad = first_hidden(name)
        if bad is not None:
            return (
                f"header column {number} '{visible(name)}' holds an invisible character ({describe(bad)}"
                f"{'; were two files joined together?' if bad == chr(0xFEFF) else ''}); remove it"
            )
        if name.strip() and name in seen:
            return f"column '{name}' appears twice in the header (columns {seen[name]} and {number}); rename one"
        seen.setdefault(name, number)
    return None


def repeats_header(values: Sequence[str], header: Sequence[str]) -> bool:
    """True when a row is the header line again (a byte-order mark in front or not): files joined together."""
    return [v.lstrip("\ufeff").strip() for v in values] == [h.strip() for h in header]
