"""The shop's catalog-wide rules for look-alike lists: what they are, their values, and applying them.

Rules filter a query item's candidates before its list is cut to k (so a list keeps k items when
the catalog has them):

| rule | value | a candidate passes when |
|---|---|---|
| `same_gender` | on | its gender is the query item's (either unknown passes) |
| `same_category` | on | its category is the query item's (either unknown passes) |
| `in_stock` | on | its stock is not 0 (unknown stock passes) |
| `price_ratio` | R >= 1 | its price is within x R of the query item's (either without a price passes) |
| `max_per_brand` | N >= 1 | fewer than N items of its brand are already in the list |
| `diversity` | L in 0-1 | (not a filter) the list is chosen by maximal marginal relevance: each next item's score is (1 - L) x its score - L x its similarity to the closest item already chosen |

The item-relative rules (gender, category, price) apply to item queries only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from core.catalog.db import Catalog
from core.files.yes_no import yes_no

_CHUNK = 900


class RuleError(ValueError):
    """A rule name or value that cannot be used, in one line."""


def _on(value: str) -> str:
    try:
        answer = yes_no(value)
    except ValueError:
        answer = None
    if answer is not True:
        raise RuleError(f"takes on (or off to remove it), not {value!r}")
    return "on"


def _ratio(value: str) -> str:
    number = _number(value)
    if number < 1:
        raise RuleError(f"is a price ratio of at least 1 (e.g. 1.5), not {value!r}")
    return f"{number:g}"


def _count(value: str) -> str:
    try:
        number = int(value)
    except ValueError:
        raise RuleError(f"is a whole number of at least 1, not {value!r}") from None
    if number < 1:
        raise RuleError(f"is a whole number of at least 1, not {value!r}")
    return str(number)


def _fraction(value: str) -> str:
    number = _number(value)
    if not 0 <= number <= 1:
        raise RuleError(f"is a number from 0 to 1, not {value!r}")
    return f"{number:g}"


def _number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise RuleError(f"needs a number, not {value!r}") from None
    if not math.isfinite(number):
        raise RuleError(f"needs a finite number, not {value!r}")
    return number


PARSERS = {
    "same_gender": _on,
    "same_category": _on,
    "in_stock": _on,
    "price_ratio": _ratio,
    "max_per_brand": _count,
    "diversity": _fraction,
}
OFF = "off"


def parse_rule(name: str, value: str) -> str | None:
    """A rule's value as stored ('on', '1.5', '3'), or None for `off`; RuleError for an unknown name or bad value."""
    name, value = name.strip().lower(), value.strip().lower()
    if name not in PARSERS:
        raise RuleError(f"unknown rule {name!r}; rules: {', '.join(PARSERS)}")
    if value == OFF:
        return None
    try:
        return PARSERS[name](value)
    except RuleError as exc:
        raise RuleError(f"{name} {exc}") from None


@dataclass(frozen=True)
class Rules:
    """The rules in force (each None or False when off)."""

    same_gender: bool = False
    same_category: bool = False
    in_stock: bool = False
    price_ratio: float | None = None
    max_per_brand: int | None = None
    diversity: float | None = None

    @classmethod
    def from_values(cls, values: dict[str, str]) -> Rules:
        """From stored values by name (rules not named are off)."""
        return cls(
            same_gender="same_gender" in values,
            same_category="same_category" in values,
            in_stock="in_stock" in values,
            price_ratio=float(values["price_ratio"]) if "price_ratio" in values else None,
            max_per_brand=int(values["max_per_brand"]) if "max_per_brand" in values else None,
            diversity=float(values["diversity"]) if values.get("diversity") not in (None, "0") else None,
        )

    def filters(self) -> bool:
        """Whether any rule drops candidates (so candidates' fields must be read)."""
        return self.same_gender or self.same_category or self.in_stock or bool(self.price_ratio)

    def relative(self) -> bool:
        """Whether a rule compares a candidate with the query item."""
        return self.same_gender or self.same_category or bool(self.price_ratio)

    def any(self) -> bool:
        return self.filters() or bool(self.max_per_brand) or bool(self.diversity)


@dataclass(frozen=True)
class Fields:
    """What the rules read of an item."""

    gender: str | None
    category: str | None
    brand: str | None
    price: float | None
    stock: int | None


def out_of_stock(db: Catalog) -> frozenset[str]:
    """The items marked out of stock (stock 0 or less; unknown stock is not out)."""
    return frozenset(i for (i,) in db.execute("SELECT id FROM items WHERE stock <= 0"))


def item_fields(db: Catalog, item_ids: Iterable[str] | None = None) -> dict[str, Fields]:
    """Item id -> the fields the rules read (every item when `item_ids` is None), in batched reads."""
    sql = "SELECT id, gender, category, brand, price, stock FROM items"
    if item_ids is None:
        rows = db.execute(sql).fetchall()
    else:
        wanted = sorted({str(i) for i in item_ids})
        rows = []
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            rows += db.execute(f"{sql} WHERE id IN ({', '.join('?' * len(chunk))})", chunk).fetchall()
    return {
        i: Fields(_folded(g), _folded(c), _folded(b), float(p) if p is not None else None, s)
        for i, g, c, b, p, s in rows
    }


def _folded(text: str | None) -> str | None:
    text = (text or "").strip()
    return text.casefold() if text else None


def passes(rules: Rules, candidate: Fields | None, query: Fields | None) -> bool:
    """Whether a candidate passes the filtering rules (for a query item's `query` fields; None: not an item query)."""
    if candidate is None:
        return True
    if rules.in_stock and candidate.stock is not None and candidate.stock <= 0:
        return False
    if query is None:
        return True
    if rules.same_gender and not _same(candidate.gender, query.gender):
        return False
    if rules.same_category and not _same(candidate.category, query.category):
        return False
    if rules.price_ratio and candidate.price and query.price and candidate.price > 0 and query.price > 0:
        ratio = candidate.price / query.price
        if not 1 / rules.price_ratio <= ratio <= rules.price_ratio:
            return False
    return True


def _same(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b
