"""Search and export filters: parse `key=value` pairs and select the matching catalog items."""

from __future__ import annotations

import math

from core.catalog.db import Catalog
from core.files.yes_no import yes_no

TEXT_KEYS = {
    "category": "category",
    "gender": "gender",
    "brand": "brand",
    "colour": "colour",
    "color": "colour",
    "source": "source",
    "currency": "currency",
}
NUMBER_KEYS = {"price_min": "price >= ?", "price_max": "price <= ?"}
FLAG_KEYS = {"in_stock", "on_sale", "exclude_same_brand"}


def keys_help() -> str:
    """Every filter key, for --help: 'category, brand, ... (text: a|b for several); price_min, ...'."""
    text = sorted(k for k in TEXT_KEYS if k != "color")
    return (
        f"{', '.join(text)} (text, any case; a|b for either); {', '.join(sorted(NUMBER_KEYS))} (numbers); "
        f"{', '.join(sorted(FLAG_KEYS))} (yes/no)"
    )


def parse_filters(pairs: list[str] | None) -> dict:
    """['gender=Women', 'price_max=500'] -> {'gender': ['Women'], 'price_max': 500.0}.

    Text keys take several values separated by '|' or by repeating the key; flags take yes/no.
    """
    filters: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not key:
            raise ValueError(f"filter {pair!r} is not key=value")
        if key in TEXT_KEYS:
            filters.setdefault(TEXT_KEYS[key], []).extend(v.strip() for v in value.split("|") if v.strip())
        elif key in NUMBER_KEYS:
            try:
                number = float(value.replace(",", "").lstrip("$"))
            except ValueError:
                raise ValueError(f"filter {key} needs a number, got {value!r}") from None
            if not math.isfinite(number):
                raise ValueError(f"filter {key} needs a finite number, got {value!r}")
            filters[key] = number
        elif key in FLAG_KEYS:
            try:
                answer = yes_no(value)
            except ValueError:
                answer = None
            if answer is None:
                raise ValueError(f"filter {key} takes yes/no, got {value!r}")
            filters[key] = answer
        else:
            known = sorted(set(TEXT_KEYS) | set(NUMBER_KEYS) | FLAG_KEYS)
            raise ValueError(f"unknown filter {key!r}; known: {', '.join(known)}")
    return filters


def _spellings(db: Catalog, column: str, values: list[str]) -> list[str]:
    """The stored spellings of `column` equal to any of `values` ignoring case (Unicode-aware)."""
    wanted = {v.casefold() for v in values}
    return [
        r[0]
        for r in db.execute(f"SELECT DISTINCT {column} FROM items WHERE {column} IS NOT NULL")
        if r[0].casefold() in wanted
    ]


def where_clause(filters: dict, query_brand: str | None = None, db: Catalog | None = None) -> tuple[str, list]:
    """SQL condition on `items` (alias-free) with its parameters; '1' when nothing filters.

    Text values match stored values ignoring case: fully (Unicode) when `db` is given, by
    SQLite's ASCII-only lower() otherwise.
    """
    clauses, params = [], []
    for key, values in filters.items():
        if key in TEXT_KEYS.values() and values:
            values = [values] if isinstance(values, str) else list(values)
            if db is not None:
                values = _spellings(db, key, values)
                clauses.append(f"{key} IN ({', '.join('?' for _ in values)})" if values else "0")
            else:
                clauses.append(f"lower({key}) IN ({', '.join('lower(?)' for _ in values)})")
            params.extend(values)
        elif key in NUMBER_KEYS and values is not None:
            clauses.append(NUMBER_KEYS[key])
            params.append(float(values))
    if filters.get("in_stock"):
        clauses.append("coalesce(stock, 1) > 0")
    if filters.get("on_sale"):
        clauses.append("on_sale = 1")
    if filters.get("exclude_same_brand") and query_brand:
        if db is not None:
            same = _spellings(db, "brand", [query_brand])
            clauses.append(f"coalesce(brand, '') NOT IN ({', '.join('?' for _ in same)})" if same else "1")
            params.extend(same)
        else:
            clauses.append("lower(coalesce(brand, '')) != lower(?)")
            params.append(query_brand)
    return (" AND ".join(clauses) or "1"), params


def is_active(filters: dict | None, query_brand: str | None = None) -> bool:
    return where_clause(filters or {}, query_brand)[0] != "1"


def matching_item_ids(db: Catalog, filters: dict | None, query_brand: str | None = None) -> list[str]:
    """Ids of the items that pass the filters, in id order."""
    where, params = where_clause(filters or {}, query_brand, db)
    return [row[0] for row in db.execute(f"SELECT id FROM items WHERE {where} ORDER BY id", params)]


def distinct_values(db: Catalog, column: str) -> list[str]:
    """The stored values of one filterable text column, for pickers."""
    if column not in TEXT_KEYS.values():
        raise ValueError(f"not a filterable column: {column}")
    return [
        r[0]
        for r in db.execute(f"SELECT DISTINCT {column} FROM items WHERE {column} IS NOT NULL ORDER BY lower({column})")
    ]


def _shown(key: str, value) -> str:
    """A filter as a person typed it: 'gender=Women|Men', 'price_max=500', 'in_stock'."""
    if key == "exclude_same_brand":
        return "exclude the query's brand"
    if isinstance(value, bool):
        return key
    if isinstance(value, list | tuple):
        return f"{key}={'|'.join(value)}"
    return f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"


_VALUE_OF = {
    "price_min": ("price", "a price"),
    "price_max": ("price", "a price"),
    "on_sale": ("on_sale", "a sale flag"),
}


def explain_empty(db: Catalog, filters: dict, query_brand: str | None = None) -> str:
    """Why filters leave (almost) nothing: how many items they leave and which filter removed them.

    The filters are applied one at a time, in the order given; the first that leaves no item is
    named, with a hint when no item has a value for its field at all (e.g. a catalog without prices).
    """
    total = db.execute("SELECT count(*) FROM items").fetchone()[0]
    applied: dict = {}
    steps = []
    for key, value in filters.items():
        if value is None or value is False or value == []:
            continue
        applied[key] = value
        left = len(matching_item_ids(db, applied, query_brand))
        steps.append(f"{_shown(key, value)} leaves {left}")
        if left == 0:
            column, what = _VALUE_OF.get(key, (key, f"a {key}") if key in TEXT_KEYS.values() else (None, ""))
            if column and not db.execute(f"SELECT 1 FROM items WHERE {column} IS NOT NULL LIMIT 1").fetchone():
                steps[-1] += f" (no item has {what})"
            break
    left = len(matching_item_ids(db, filters, query_brand))
    return f"the filters leave {left} of {total} items: " + ", then ".join(steps)
