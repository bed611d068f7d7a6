"""Graded verdicts: good / close / wrong, their gains and how much a close match counts in precision.

A yes/no verdict (grade NULL in the labels table) reads as good (yes) or wrong (no). A close one is
stored with relevant = 0, so a reader of `relevant` alone sees it as not relevant.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import SettingError, settings

GOOD, CLOSE, WRONG = "good", "close", "wrong"
GRADES = (GOOD, CLOSE, WRONG)  # best first
DEFAULT_GAINS = "good=3,close=1,wrong=0"
DEFAULT_CLOSE_SHARE = 0.5
DEFAULT_MIN_JUDGED = 0.8


def grade_of(relevant: int | bool, grade: str | None) -> str:
    """The grade of a stored verdict: its `grade`, else good for relevant and wrong for not."""
    return grade if grade in GRADES else (GOOD if relevant else WRONG)


def parse_grade(text: str | None) -> str | None:
    """A grade word (any case, spaces around it); None for an empty cell; ValueError otherwise."""
    if text is None or not text.strip():
        return None
    word = text.strip().lower()
    if word not in GRADES:
        raise ValueError(f"grade {text.strip()!r} is not good/close/wrong")
    return word


@dataclass(frozen=True)
class Scoring:
    """How verdicts become figures: the gain of each grade (nDCG), the share of a hit a close match
    is worth in precision, and the judged share of a top k below which a method is not comparable."""

    gains: dict[str, float]
    close_share: float = DEFAULT_CLOSE_SHARE
    min_judged: float = DEFAULT_MIN_JUDGED

    def hit(self, grade: str) -> float:
        """What one result counts for in precision: 1 good, `close_share` close, 0 wrong."""
        return 1.0 if grade == GOOD else self.close_share if grade == CLOSE else 0.0

    def gain(self, grade: str) -> float:
        return self.gains[grade]


def parse_gains(text: str) -> dict[str, float]:
    """`good=3,close=1,wrong=0` -> gains; SettingError naming LOOKALIKE_GAINS when unusable."""
    gains = dict(zip(GRADES, (3.0, 1.0, 0.0)))
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if name.strip().lower() not in GRADES or not 0 <= number < float("inf"):
            raise SettingError(f"LOOKALIKE_GAINS must look like {DEFAULT_GAINS!r}, not {text!r}")
        gains[name.strip().lower()] = number
    if not gains[GOOD] >= gains[CLOSE] >= gains[WRONG] or gains[GOOD] == 0:
        raise SettingError(f"LOOKALIKE_GAINS must rank good >= close >= wrong with good above 0, not {text!r}")
    return gains


def _share(name: str, text: str | None, default: float) -> float:
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise SettingError(f"{name} must be a number from 0 to 1, not {text!r}")
    return value


def scoring() -> Scoring:
    """The scoring this process uses (LOOKALIKE_GAINS, LOOKALIKE_CLOSE_SHARE, LOOKALIKE_MIN_JUDGED)."""
    chosen = settings()
    return Scoring(
        gains=parse_gains(chosen.gains or DEFAULT_GAINS),
        close_share=_share("LOOKALIKE_CLOSE_SHARE", chosen.close_share, DEFAULT_CLOSE_SHARE),
        min_judged=_share("LOOKALIKE_MIN_JUDGED", chosen.min_judged, DEFAULT_MIN_JUDGED),
    )
