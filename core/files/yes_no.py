"""Yes/no words as people write them in CSV cells and filters ("yes", "Y", "true", "1", "off", ...)."""

from __future__ import annotations

YES = frozenset({"1", "true", "yes", "y", "on"})
NO = frozenset({"0", "false", "no", "n", "off"})


def yes_no(text: str | None, yes: frozenset[str] = YES, no: frozenset[str] = NO) -> bool | None:
    """True or False for a yes or no word (any case, spaces around it); None for an empty cell;
    ValueError for anything else."""
    if text is None or not text.strip():
        return None
    word = text.strip().lower()
    if word in yes:
        return True
    if word in no:
        return False
    raise ValueError(f"{text!r} is not yes/no")
