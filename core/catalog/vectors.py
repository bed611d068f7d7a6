"""Embedding vectors in the catalog: which items need one, storing them, reading them back.

Reads leave out gone items (items that left the shop's feed, core/catalog/sync.py) unless asked not to.
A method's vectors are one version at a time: vectors of another version (re-tuned, retrained) are
stored in `embeddings_next` and replace the served ones only when the new version is complete
(`promote`), so searches, exports and the API never read a half-made version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from core.catalog.db import Catalog

# Which photo represents an item (image methods embed it, results show it): a packshot first.
ROLE_ORDER_SQL = "CASE role WHEN 'primary' THEN 0 WHEN 'cutout' THEN 1 WHEN 'model' THEN 2 ELSE 3 END"


@dataclass(frozen=True)
class Pending:
    """An item whose vector for a method is missing or outdated."""

    item_id: str
    path: str | None  # image path for image methods
    text: str | None  # title + description for text methods
    source_hash: str


def missing_vectors(method: str) -> str:
    """The one-line remedy when a method has no vectors yet."""
    return f"no vectors for {method} yet; run `python -m core embed --method {method}`"


def pack(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def unpack(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def item_text(title: str | None, description: str | None) -> str:
    """The text a text method embeds for an item: title and description, each once."""
    parts = [p.strip() for p in (title, description) if p and p.strip()]
    return " ".join(dict.fromkeys(parts))


def photo_sql(item: str, column: str = "rowid") -> str:
    """SQL for a column of the photo that represents an item (`item`: SQL naming its id).

    It is the item's readable photo whose role comes first (primary, cutout, model, others).
    """
    return (
        f"(SELECT p.{column} FROM images p WHERE p.item_id = {item} AND +p.status = 'ok' "
        f"ORDER BY {ROLE_ORDER_SQL} LIMIT 1)"
    )


def primary_images_sql() -> str:
    """SQL selecting (item_id, path, sha256) of the photo that represents each item that has one."""
    return f"SELECT g.item_id, g.path, g.sha256 FROM items i JOIN images g ON g.rowid = {photo_sql('i.id')}"


def embeddable_count(db: Catalog, kind: str) -> int:
    """How many live items a method of this kind can embed: those with a photo (image), or all (text)."""
    source = primary_images_sql() if kind == "image" else "SELECT id AS item_id FROM items"
    return db.execute(f"SELECT count(*) FROM ({source}) WHERE item_id NOT IN ({GONE_SQL})").fetchone()[0]


def pending(db: Catalog, method: str, version: str, kind: str = "image", limit: int | None = None) -> list[Pending]:
    """Live items lacking an up-to-date vector for `method` (served, or of the next version being
    embedded), skipping known failures of this version."""
    if kind == "image":
        source = primary_images_sql()
        rows = db.execute(
            f"SELECT s.item_id, s.path, s.sha256 FROM ({source}) s "
            "LEFT JOIN embeddings e ON e.method = ? AND e.item_id = s.item_id "
            "LEFT JOIN embeddings_next n ON n.method = ? AND n.item_id = s.item_id "
            "LEFT JOIN embedding_failures f ON f.method = ? AND f.item_id = s.item_id "
            "  AND f.version = ? AND f.source_hash IS s.sha256 "
            "WHERE (e.item_id IS NULL OR e.version != ? OR e.source_hash != s.sha256) "
            "  AND (n.item_id IS NULL OR n.version != ? OR n.source_hash != s.sha256) "
            f"  AND f.item_id IS NULL AND s.item_id NOT IN ({GONE_SQL}) ORDER BY s.item_id",
            (method, method, method, version, version, version),
        ).fetchall()
        found = [Pending(r[0], r[1], None, r[2]) for r in rows]
    else:
        found = []
        for row in db.execute(
            "SELECT i.id, i.title, i.description, e.version, e.source_hash, n.version, n.source_hash FROM items i "
            "LEFT JOIN embeddings e ON e.method = ? AND e.item_id = i.id "
            "LEFT JOIN embeddings_next n ON n.method = ? AND n.item_id = i.id "
            "WHERE i.gone_at IS NULL ORDER BY i.id",
            (method, method),
        ):
            text = item_text(row[1], row[2])
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if (row[3], row[4]) != (version, digest) and (row[5], row[6]) != (version, digest):
                found.append(Pending(row[0], None, text, digest))
    return found[:limit] if limit else found


def store(db: Catalog, method: str, version: str, rows: Iterable[tuple[str, np.ndarray, str]]) -> int:
    """Upsert vectors `(item_id, vector, source_hash)` in one transaction; return the count. Vectors of
    a version other than the one served wait in `embeddings_next` until `promote`."""
    payload = [
        (method, item_id, version, int(np.asarray(vec).size), pack(vec), digest) for item_id, vec, digest in rows
    ]
    table = "embeddings_next" if _other_version_served(db, method, version) else "embeddings"
    with db.conn:
        db.conn.executemany(
            f"INSERT INTO {table} (method, item_id, version, dim, vector, source_hash) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (method, item_id) DO UPDATE SET "
            "version = excluded.version, dim = excluded.dim, vector = excluded.vector, "
            "source_hash = excluded.source_hash, created_at = datetime('now')",
            payload,
        )
        db.conn.executemany(
            "DELETE FROM embedding_failures WHERE method = ? AND item_id = ?",
            [(p[0], p[1]) for p in payload],
        )
    return len(payload)


def _other_version_served(db: Catalog, method: str, version: str) -> bool:
    """Whether the method's served vectors are of another version than `version`."""
    return bool(
        db.execute("SELECT 1 FROM embeddings WHERE method = ? AND version != ? LIMIT 1", (method, version)).fetchone()
    )


@dataclass(frozen=True)
class NextVersion:
    """A method's next version being embedded beside the served one: `done` of `total` live items."""

    version: str
    done: int
    total: int

    def note(self) -> str:
        return f"new version being embedded: {self.done}/{self.total}"


def next_version(db: Catalog, method: str, kind: str) -> NextVersion | None:
    """The version waiting in `embeddings_next` (None when none is), and how far it is."""
    row = db.execute(
        f"SELECT version, count(*) FROM embeddings_next WHERE method = ? AND item_id NOT IN ({GONE_SQL}) "
        "GROUP BY version ORDER BY max(created_at) DESC LIMIT 1",
        (method,),
    ).fetchone()
    return NextVersion(row[0], row[1], embeddable_count(db, kind)) if row else None


def promote(db: Catalog, method: str, version: str) -> int:
    """Serve `version`: its vectors waiting in `embeddings_next` replace every served vector of the
    method in one transaction (items it has no vector for lose theirs: two versions are never served
    together). Call it when the version is complete; return how many vectors it serves."""
    with db.conn:
        db.conn.execute(
            "INSERT INTO embeddings (method, item_id, version, dim, vector, source_hash, created_at) "
            "SELECT method, item_id, version, dim, vector, source_hash, created_at FROM embeddings_next "
            "WHERE method = ? AND version = ? ON CONFLICT (method, item_id) DO UPDATE SET "
            "version = excluded.version, dim = excluded.dim, vector = excluded.vector, "
            "source_hash = excluded.source_hash, created_at = excluded.created_at",
            (method, version),
        )
        db.conn.execute("DELETE FROM embeddings WHERE method = ? AND version != ?", (method, version))
        db.conn.execute("DELETE FROM embeddings_next WHERE method = ?", (method,))
    return vector_count(db, method, version, live=False)


def record_failure(db: Catalog, method: str, version: str, item_id: str, source_hash: str | None, reason: str) -> None:
    """Remember that an item could not be embedded with this version, and why."""
    with db.conn:
        db.conn.execute(
            "INSERT INTO embedding_failures (method, item_id, version, source_hash, reason) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (method, item_id) DO UPDATE SET "
            "version = excluded.version, source_hash = excluded.source_hash, reason = excluded.reason",
            (method, item_id, version, source_hash, reason),
        )


def forget_failures(db: Catalog, method: str, reasons: tuple[str, ...] = ()) -> int:
    """Forget `method`'s recorded failures (only those whose reason begins with one of `reasons`,
    when given), so the next run tries those photos again; return how many."""
    where = " OR ".join("substr(reason, 1, ?) = ?" for _ in reasons)
    params = [value for prefix in reasons for value in (len(prefix), prefix)]
    with db.conn:
        cursor = db.conn.execute(
            f"DELETE FROM embedding_failures WHERE method = ?{f' AND ({where})' if reasons else ''}", [method, *params]
        )
    return cursor.rowcount


GONE_SQL = "SELECT id FROM items WHERE gone_at IS NOT NULL"  # items that left the feed


# Named items' rows: each checked by its own look-up (NOT IN would list every gone item for each read).
_LIVE_ROW_SQL = " AND NOT EXISTS (SELECT 1 FROM items g WHERE g.id = item_id AND g.gone_at IS NOT NULL)"


def _of_version(version: str | None, live: bool = True, named: bool = False) -> tuple[str, list[str]]:
    """SQL and parameters keeping only the vectors of `version` (every vector when None) and, when
    `live`, of items that have not left the feed (`named`: for reads of named items, by key)."""
    sql, params = (" AND version = ?", [version]) if version is not None else ("", [])
    if not live:
        return sql, params
    return sql + (_LIVE_ROW_SQL if named else f" AND item_id NOT IN ({GONE_SQL})"), params


def gone_ids(db: Catalog) -> set[str]:
    """The ids of the items that left the feed."""
    return {r[0] for r in db.execute(GONE_SQL)}


def gone_generation(db: Catalog) -> int:
    """A counter that moves whenever an item goes, comes back, or a gone item is added or deleted
    (triggers, migration 0012): a set of gone ids read at one value is current while it holds."""
    return db.execute("SELECT generation FROM gone_generation").fetchone()[0]


def load_matrix(
    db: Catalog, method: str, version: str | None = None, live: bool = True
) -> tuple[list[str], np.ndarray]:
    """The stored vectors of a method (of `version` only, when given: one vector space; of live items
    only unless not `live`) as (item ids, float32 matrix), ordered by item id."""
    ids, vectors = [], []
    sql, params = _of_version(version, live)
    for item_id, blob in db.execute(
        f"SELECT item_id, vector FROM embeddings WHERE method = ?{sql} ORDER BY item_id", (method, *params)
    ):
        ids.append(item_id)
        vectors.append(unpack(blob))
    if not vectors:
        return [], np.zeros((0, 0), dtype=np.float32)
    return ids, np.vstack(vectors).astype(np.float32, copy=False)


def get_vector(db: Catalog, method: str, item_id: str, version: str | None = None) -> np.ndarray | None:
    """One item's stored vector of a method (of `version` only, when given; None when it has none)."""
    sql, params = _of_version(version, named=True)
    row = db.execute(
        f"SELECT vector FROM embeddings WHERE method = ? AND item_id = ?{sql}", (method, str(item_id), *params)
    ).fetchone()
    return unpack(row[0]).copy() if row else None


def _stored(
    db: Catalog, method: str, item_ids: Iterable[str], version: str | None = None
) -> Iterator[tuple[str, bytes, str]]:
    """(item id, vector blob, source hash) of the given items that have a vector of `method` (of `version`)."""
    wanted = sorted(set(item_ids))
    sql, params = _of_version(version, named=True)
    for start in range(0, len(wanted), 900):
        chunk = wanted[start : start + 900]
        yield from db.execute(
            "SELECT item_id, vector, source_hash FROM embeddings WHERE method = ? "
            f"AND item_id IN ({','.join('?' * len(chunk))}){sql}",
            [method, *chunk, *params],
        )


def vectors_of(
    db: Catalog, method: str, item_ids: Iterable[str], version: str | None = None
) -> tuple[list[str], np.ndarray]:
    """The stored vectors (of `version`) of some items, as (ids in id order, float32 matrix); items
    without one are left out."""
    rows = {i: unpack(blob) for i, blob, _ in _stored(db, method, item_ids, version)}
    found = sorted(rows)
    return found, np.vstack([rows[i] for i in found]) if found else np.zeros((0, 0), np.float32)


def current_vectors(db: Catalog, method: str, sources: dict[str, str]) -> dict[str, np.ndarray]:
    """Item id -> served vector of `method`, for the items of `sources` (item id -> source hash) whose
    vector was made from that source (a vector of an older photo is left out)."""
    return {i: unpack(blob) for i, blob, source in _stored(db, method, sources) if source == sources[i]}


def changed_since(db: Catalog, method: str, since: int) -> list[str]:
    """Ids of the items whose vector of `method` changed (stored, replaced, deleted, gone or back) at
    vector generation `since` or later: what an index built at `since` does not know."""
    return [
        r[0]
        for r in db.execute("SELECT item_id FROM vector_changes WHERE method = ? AND generation >= ?", (method, since))
    ]


def item_ids_with_vectors(db: Catalog, method: str, version: str | None = None) -> list[str]:
    """Ids of the items that have a vector of `method` (of `version`, when given), in id order."""
    sql, params = _of_version(version)
    query = f"SELECT item_id FROM embeddings WHERE method = ?{sql} ORDER BY item_id"
    return [r[0] for r in db.execute(query, (method, *params))]


def searched_version(db: Catalog, method: str, current: str) -> str:
    """The one version of a method's vectors that searches and indices read: `current` (the method's
    version now) when some vectors have it or none are stored; else, re-tuned or retrained and not
    embedded since, the version most of its vectors have (a catalog from before `embeddings_next`
    may hold a half-made one beside it). Vectors of two versions are never read together."""
    if db.execute("SELECT 1 FROM embeddings WHERE method = ? AND version = ? LIMIT 1", (method, current)).fetchone():
        return current
    row = db.execute(
        "SELECT version FROM embeddings WHERE method = ? GROUP BY version ORDER BY count(*) DESC, version LIMIT 1",
        (method,),
    ).fetchone()
    return row[0] if row else current


# Each version found by one seek in the (method, version) index, the next after it by another: the
# versions are one or two, the vectors many (DISTINCT would read every entry).
_VERSIONS_SQL = """
WITH RECURSIVE found(version) AS (
    SELECT min(version) FROM embeddings WHERE method = ?1
    UNION ALL
    SELECT (SELECT min(version) FROM embeddings WHERE method = ?1 AND version > found.version)
    FROM found WHERE found.version IS NOT NULL
)
SELECT version FROM found WHERE version IS NOT NULL"""


def stored_versions(db: Catalog, method: str) -> set[str]:
    """The method versions that made its stored vectors (one, unless a re-embed is under way)."""
    return {r[0] for r in db.execute(_VERSIONS_SQL, (method,))}


def generation(db: Catalog, method: str) -> int:
    """The catalog's change counter for a method's vectors (triggers move it on every insert, update
    and delete), so a cached matrix or a built index knows the moment it is stale."""
    row = db.execute("SELECT generation FROM vector_generations WHERE method = ?", (method,)).fetchone()
    return row[0] if row else 0


def vector_count(db: Catalog, method: str, version: str | None = None, live: bool = True) -> int:
    """How many vectors of `method` are stored (of `version` only, when given; of live items only unless
    not `live`): every one counted from the index, less those of gone items, found from the gone items."""
    params = (method,) if version is None else (method, version)
    of_version = "" if version is None else " AND version = ?"
    total = db.execute(f"SELECT count(*) FROM embeddings WHERE method = ?{of_version}", params).fetchone()[0]
    if not live:
        return total
    gone = db.execute(
        "SELECT count(*) FROM items g CROSS JOIN embeddings e ON e.method = ? AND e.item_id = g.id "  # gone items first
        f"WHERE g.gone_at IS NOT NULL{'' if version is None else ' AND e.version = ?'}",
        params,
    ).fetchone()[0]
    return total - gone


def checksum(ids: list[str], matrix: np.ndarray) -> str:
    """A fingerprint of a method's vectors, for spotting stale indices."""
    digest = hashlib.sha256()
    digest.update(json.dumps(ids).encode("ascii"))
    digest.update(np.ascontiguousarray(matrix, dtype="<f4").tobytes())
    return digest.hexdigest()


def methods_with_vectors(db: Catalog) -> dict[str, int]:
    """Method name -> number of stored vectors, for every method that has some."""
    return dict(db.execute("SELECT method, count(*) FROM embeddings GROUP BY method").fetchall())
