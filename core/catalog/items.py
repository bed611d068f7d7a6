"""Reading the catalog: counts, filtered and paginated item lists, one item's details, result cards."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

from core.catalog.db import Catalog
from core.catalog.filters import where_clause
from core.catalog.ids import normalise
from core.catalog.vectors import ROLE_ORDER_SQL, methods_with_vectors, photo_sql

_PHOTO_PATH = photo_sql("i.id", "path")
_PHOTO_URL = (
    f"(SELECT url FROM images u WHERE u.item_id = i.id AND u.url IS NOT NULL ORDER BY {ROLE_ORDER_SQL} LIMIT 1)"
)
_CARD_SQL = (
    "SELECT i.id, i.title, i.brand, i.category, i.colour, i.gender, i.price, i.currency, "
    f"{_PHOTO_PATH} AS image_path, {_PHOTO_URL} AS image_url FROM items i"
)


@dataclass(frozen=True)
class CatalogStats:
    """Catalog counts (`stats`, the Home page): items, photos by state, vectors per method."""

    items: int
    gone: int  # missing from the last synced feed (counted in items, never returned)
    images_ok: int
    images_bad: int  # missing or unreadable
    images_missing: int
    images_unreadable: int
    vectors: dict[str, int]  # per method


def stats(db: Catalog) -> CatalogStats:
    """Catalog counts: items (and how many of them are gone), images ok/bad, vectors per method."""
    items, gone = db.execute("SELECT count(*), count(gone_at) FROM items").fetchone()
    by_status = dict(db.execute("SELECT status, count(*) FROM images GROUP BY status").fetchall())
    return CatalogStats(
        items=items,
        gone=gone,
        images_ok=by_status.get("ok", 0),
        images_bad=by_status.get("missing", 0) + by_status.get("unreadable", 0),
        images_missing=by_status.get("missing", 0),
        images_unreadable=by_status.get("unreadable", 0),
        vectors=methods_with_vectors(db),
    )


def like_pattern(text: str) -> str:
    """`text` for a LIKE pattern with `ESCAPE '\\'`: its % and _ match themselves, not anything."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class BrowseRow:
    """One item on a page of `browse` (the Catalog page): its fields, stock, whether it is gone, its photo."""

    item_id: str
    title: str | None
    brand: str | None
    category: str | None
    colour: str | None
    gender: str | None
    price: float | None
    currency: str | None
    stock: int | None
    gone_at: str | None  # missing from the last synced feed since then (UTC)
    image_path: str | None  # the photo that represents it


def browse(
    db: Catalog, filters: dict | None = None, text: str | None = None, offset: int = 0, limit: int = 24
) -> tuple[list[BrowseRow], int]:
    """One page of items matching filters and a text (title, description or brand), with the total."""
    where, params = where_clause(filters or {})
    if text and text.strip():
        where += (
            " AND (title LIKE ? ESCAPE '\\' OR description LIKE ? ESCAPE '\\' OR brand LIKE ? ESCAPE '\\' OR id = ?)"
        )
        like = f"%{like_pattern(text.strip())}%"
        params += [like, like, like, text.strip()]
    total = db.execute(f"SELECT count(*) FROM items WHERE {where}", params).fetchone()[0]
    rows = [
        BrowseRow(**row)
        for row in db.query(
            "SELECT id AS item_id, title, brand, category, colour, gender, price, currency, stock, gone_at, "
            f"{_PHOTO_PATH} AS image_path FROM items i WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
    ]
    return rows, total


def catalog_id(db: Catalog, item_id: str) -> str:
    """The catalog's spelling of an id a person typed: as typed when an item has it, else normalised
    as imports store ids (NFC, trimmed: core/catalog/ids.py)."""
    if db.execute("SELECT 1 FROM items WHERE id = ?", [item_id]).fetchone():
        return item_id
    return normalise(item_id)


@dataclass(frozen=True)
class ItemPhoto:
    """One of an item's photos: its role, where it is, and whether it could be read (`status` ok)."""

    role: str
    path: str | None
    url: str | None
    width: int | None
    height: int | None
    status: str  # ok, missing or unreadable
    reason: str | None


@dataclass(frozen=True)
class ItemDetail:
    """Everything known about one item (the Catalog and Label pages): its fields, attributes, photos
    (primary first), the first readable photo, and which methods have its vector."""

    id: str
    source: str
    title: str | None
    description: str | None
    brand: str | None
    gender: str | None
    category: str | None
    colour: str | None
    price: float | None
    currency: str | None
    on_sale: int | None  # 1, 0, or unknown
    stock: int | None
    gone_at: str | None  # missing from the last synced feed since then (UTC)
    updated_at: str
    attributes: dict[str, object]
    images: list[ItemPhoto]
    image_path: str | None
    methods: list[str]


_DETAIL_COLUMNS = (
    "id, source, title, description, brand, gender, category, colour, price, currency, on_sale, stock, gone_at, "
    "updated_at, attributes"
)


def item_detail(db: Catalog, item_id: str) -> ItemDetail | None:
    """Everything known about one item: fields, attributes, photos and which methods have vectors."""
    rows = list(db.query(f"SELECT {_DETAIL_COLUMNS} FROM items WHERE id = ?", [item_id]))
    if not rows:
        return None
    fields = rows[0]
    images = [
        ItemPhoto(**row)
        for row in db.query(
            "SELECT role, path, url, width, height, status, reason FROM images "
            f"WHERE item_id = ? ORDER BY {ROLE_ORDER_SQL}",
            [item_id],
        )
    ]
    return ItemDetail(
        **{**fields, "attributes": json.loads(fields["attributes"] or "{}")},
        images=images,
        image_path=next((i.path for i in images if i.status == "ok"), None),
        methods=[
            r[0] for r in db.execute("SELECT method FROM embeddings WHERE item_id = ? ORDER BY method", [item_id])
        ],
    )


@dataclass(frozen=True)
class ItemCard:
    """What a result shows of an item (the display fields of a search `Hit`, by the same names); only
    `item_id` for an item the catalog does not have."""

    item_id: str
    title: str | None = None
    brand: str | None = None
    category: str | None = None
    colour: str | None = None
    gender: str | None = None
    price: float | None = None
    currency: str | None = None
    image_path: str | None = None  # the photo that represents it
    image_url: str | None = None  # its first photo URL
    photo_missing: bool = False  # image_path was deleted or moved since import (kept, to say what to restore)


def item_cards(db: Catalog, item_ids: Iterable[str] | None = None) -> dict[str, ItemCard]:
    """Item id -> its ItemCard. Every item when `item_ids` is None; unknown ids are left out."""
    if item_ids is None:
        rows = list(db.query(_CARD_SQL))
    else:
        wanted, rows = sorted(set(map(str, item_ids))), []
        for start in range(0, len(wanted), 900):
            chunk = wanted[start : start + 900]
            rows += db.query(f"{_CARD_SQL} WHERE i.id IN ({','.join('?' * len(chunk))})", chunk)
    return {
        r["id"]: ItemCard(
            item_id=r["id"],
            **{name: value for name, value in r.items() if name != "id"},
            photo_missing=bool(r["image_path"]) and not os.path.isfile(r["image_path"]),
        )
        for r in rows
    }


def missing_photos(db: Catalog) -> list[str]:
    """Ids of items whose photo was usable at import but is no longer on disk (deleted or moved)."""
    return sorted(item_id for item_id, card in item_cards(db).items() if card.photo_missing)


ITEM_COLUMNS = ("title", "brand", "category", "colour", "gender", "source")  # an item's text columns


def item_column(db: Catalog, column: str) -> dict[str, str | None]:
    """Item id -> one of its ITEM_COLUMNS, for every item."""
    if column not in ITEM_COLUMNS:
        raise ValueError(f"not an item column: {column}")
    return dict(db.execute(f"SELECT id, {column} FROM items"))  # column from a fixed set


def price_range(db: Catalog) -> tuple[float, float] | None:
    """(lowest, highest) finite price, or None; an infinite price stored by an older version is left out."""
    low, high = db.execute(
        "SELECT min(price), max(price) FROM items WHERE price BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308"
    ).fetchone()
    return (float(low), float(high)) if low is not None else None
