"""Browsing the catalog: filtered, paginated item lists and one item's details."""
from __future__ import annotations

import json

import sqlite_utils

from core.filters import where_clause
from core.vectors import ROLE_ORDER_SQL

_BEST_IMAGE = ("(SELECT path FROM images g WHERE g.item_id = items.id AND g.status = 'ok' "
               f"ORDER BY {ROLE_ORDER_SQL} LIMIT 1)")


def browse(db: sqlite_utils.Database, filters: dict | None = None, text: str | None = None,
           offset: int = 0, limit: int = 24) -> tuple[list[dict], int]:
    """One page of items matching filters and a text (title, description or brand), with the total."""
    where, params = where_clause(filters or {})
    if text and text.strip():
        where += " AND (title LIKE ? OR description LIKE ? OR brand LIKE ? OR id = ?)"
        like = f"%{text.strip()}%"
        params += [like, like, like, text.strip()]
    total = db.execute(f"SELECT count(*) FROM items WHERE {where}", params).fetchone()[0]
    rows = list(db.query(
        f"SELECT id, title, brand, category, colour, gender, price, currency, stock, {_BEST_IMAGE} AS image_path "
        f"FROM items WHERE {where} ORDER BY id LIMIT ? OFFSET ?", [*params, limit, offset]))
    return rows, total


def item_detail(db: sqlite_utils.Database, item_id: str) -> dict | None:
    """Everything known about one item: fields, attributes, photos and which methods have vectors."""
    rows = list(db.query("SELECT * FROM items WHERE id = ?", [item_id]))
    if not rows:
        return None
    item = rows[0]
    item["attributes"] = json.loads(item["attributes"] or "{}")
    item["images"] = list(db.query("SELECT role, path, url, width, height, status, reason FROM images "
                                   f"WHERE item_id = ? ORDER BY {ROLE_ORDER_SQL}", [item_id]))
    item["image_path"] = next((i["path"] for i in item["images"] if i["status"] == "ok"), None)
    item["methods"] = [r[0] for r in db.execute("SELECT method FROM embeddings WHERE item_id = ? ORDER BY method", [item_id])]
    return item


def price_range(db: sqlite_utils.Database) -> tuple[float, float] | None:
    low, high = db.execute("SELECT min(price), max(price) FROM items").fetchone()
    return (float(low), float(high)) if low is not None else None


def item_ids_with_vectors(db: sqlite_utils.Database, method: str, limit: int | None = None) -> list[str]:
    sql = "SELECT item_id FROM embeddings WHERE method = ? ORDER BY item_id"
    return [r[0] for r in db.execute(sql + (" LIMIT ?" if limit else ""), [method, *([limit] if limit else [])])]
