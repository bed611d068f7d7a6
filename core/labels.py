"""Relevance labels: one committed write per judgement, full history, CSV exchange between teams."""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from core.atomic import atomic_text_writer
from core.report import ImportReport

CSV_COLUMNS = ("query_kind", "query_key", "candidate_id", "method", "rank", "relevant", "labeler",
               "note", "created_at")
TRUE_WORDS = {"1", "true", "yes", "y", "relevant"}
FALSE_WORDS = {"0", "false", "no", "n", "not relevant"}


@dataclass(frozen=True)
class Query:
    """What a label is about: a catalog item, or an uploaded photo (by content hash)."""

    kind: str   # "item" or "upload"
    key: str    # item id or sha256

    @classmethod
    def item(cls, item_id: str) -> "Query":
        return cls("item", str(item_id))

    @classmethod
    def upload(cls, sha256: str) -> "Query":
        return cls("upload", sha256)


class LabelError(ValueError):
    """A label that cannot be stored, in one line."""


def add_label(db: sqlite_utils.Database, query: Query, candidate_id: str, method: str, rank: int,
              relevant: bool, labeler: str, note: str | None = None) -> int:
    """Store one judgement immediately (its own transaction); return its id."""
    labeler = (labeler or "").strip()
    if not labeler:
        raise LabelError("a labeler name is needed")
    if query.kind not in ("item", "upload"):
        raise LabelError(f"unknown query kind {query.kind!r}")
    if query.kind == "item" and not _item_exists(db, query.key):
        raise LabelError(f"no catalog item {query.key!r}")
    if not _item_exists(db, candidate_id):
        raise LabelError(f"no catalog item {candidate_id!r}")
    with db.conn:
        cursor = db.conn.execute(
            "INSERT INTO labels (query_kind, query_key, candidate_id, method, rank, relevant, labeler, note) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (query.kind, query.key, str(candidate_id), method, int(rank), int(bool(relevant)), labeler, note),
        )
    return cursor.lastrowid


def _item_exists(db: sqlite_utils.Database, item_id: str) -> bool:
    return db.execute("SELECT 1 FROM items WHERE id = ?", (str(item_id),)).fetchone() is not None


def current_labels(db: sqlite_utils.Database, query: Query) -> dict[str, bool]:
    """Candidate id -> latest judgement for one query."""
    rows = db.execute(
        "SELECT candidate_id, relevant FROM current_labels WHERE query_kind = ? AND query_key = ?",
        (query.kind, query.key),
    )
    return {candidate: bool(relevant) for candidate, relevant in rows}


def history(db: sqlite_utils.Database, query: Query, candidate_id: str) -> list[dict]:
    """Every judgement of one pair, oldest first."""
    return list(db.query(
        "SELECT * FROM labels WHERE query_kind = ? AND query_key = ? AND candidate_id = ? "
        "ORDER BY created_at, id", (query.kind, query.key, str(candidate_id))))


def label_counts(db: sqlite_utils.Database) -> dict:
    """How much has been judged: queries, current labels, relevant ones."""
    row = db.execute(
        "SELECT count(DISTINCT query_kind || ':' || query_key), count(*), coalesce(sum(relevant), 0) "
        "FROM current_labels").fetchone()
    return {"queries": row[0], "labels": row[1], "relevant": row[2]}


def next_query(db: sqlite_utils.Database, order: str = "unlabelled", category: str | None = None,
               seed: int | None = None) -> str | None:
    """Pick the next catalog item to label: `unlabelled` first, `random`, or within a `category`."""
    where, params = ["EXISTS (SELECT 1 FROM images g WHERE g.item_id = i.id AND g.status = 'ok')"], []
    if category:
        where.append("lower(i.category) = lower(?)")
        params.append(category)
    if order in ("unlabelled", "category"):
        where.append("NOT EXISTS (SELECT 1 FROM labels l WHERE l.query_kind = 'item' AND l.query_key = i.id)")
    ids = [r[0] for r in db.execute(f"SELECT i.id FROM items i WHERE {' AND '.join(where)} ORDER BY i.id", params)]
    if not ids and order != "random":
        return next_query(db, "random", category, seed)
    return random.Random(seed).choice(ids) if ids else None


def export_labels(db: sqlite_utils.Database, path: str | Path) -> int:
    """Write the whole label history as CSV (atomically); return the row count."""
    count = 0
    with atomic_text_writer(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in db.execute(f"SELECT {', '.join(CSV_COLUMNS)} FROM labels ORDER BY created_at, id"):
            writer.writerow(row)
            count += 1
    return count


def import_labels(db: sqlite_utils.Database, path: str | Path) -> ImportReport:
    """Merge a labels CSV: bad rows are reported, rows already present are skipped (idempotent)."""
    report = ImportReport()
    good = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("query_key", "candidate_id", "method", "relevant", "labeler")
                   if c not in (reader.fieldnames or [])]
        if missing:
            report.problem(Path(path).name, f"missing column(s): {', '.join(missing)}")
            return report
        for line, row in enumerate(reader, start=2):
            report.rows += 1
            try:
                good.append(_label_row(db, row))
            except LabelError as exc:
                report.problem(f"row {line}", str(exc))
    with db.conn:
        before = db.conn.total_changes
        db.conn.executemany(
            "INSERT OR IGNORE INTO labels (query_kind, query_key, candidate_id, method, rank, relevant, "
            "labeler, note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
            "coalesce(?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))", good)
        report.items = db.conn.total_changes - before
    report.duplicates = len(good) - report.items
    return report


def _label_row(db: sqlite_utils.Database, row: dict[str, str]) -> tuple:
    kind = (row.get("query_kind") or "item").strip() or "item"
    key = (row.get("query_key") or "").strip()
    candidate = (row.get("candidate_id") or "").strip()
    relevant = (row.get("relevant") or "").strip().lower()
    if kind not in ("item", "upload"):
        raise LabelError(f"query_kind {kind!r} is not item/upload")
    if not key or not candidate:
        raise LabelError("query_key and candidate_id are required")
    if kind == "item" and not _item_exists(db, key):
        raise LabelError(f"query item {key!r} is not in the catalog")
    if not _item_exists(db, candidate):
        raise LabelError(f"candidate item {candidate!r} is not in the catalog")
    if relevant not in TRUE_WORDS | FALSE_WORDS:
        raise LabelError(f"relevant {row.get('relevant')!r} is not yes/no")
    try:
        rank = int(row.get("rank") or 1)
    except ValueError:
        raise LabelError(f"rank {row.get('rank')!r} is not a whole number") from None
    if rank < 1:
        raise LabelError(f"rank {rank} is below 1")
    labeler = (row.get("labeler") or "").strip()
    if not labeler:
        raise LabelError("labeler is empty")
    return (kind, key, candidate, (row.get("method") or "").strip(), rank,
            int(relevant in TRUE_WORDS), labeler, (row.get("note") or None),
            (row.get("created_at") or "").strip() or None)


def judge_by_attributes(db: sqlite_utils.Database, ids: list[str], vectors, queries: list[int], attributes: str,
                        labeler: str, method: str, k: int = 10) -> int:
    """Label each query row's top k among `ids` (cosine on `vectors`) as relevant when every listed
    attribute matches (`"category,colour"`): simulated judgements from catalog metadata. Returns the count."""
    import numpy as np

    from core.evaluate import joint_values, neighbours
    values = joint_values(db, ids, attributes)
    count = 0
    for q, row in zip(queries, neighbours(vectors, np.asarray(queries), k)):
        for rank, c in enumerate(row.tolist(), start=1):
            if values[q] is not None and values[c] is not None:
                add_label(db, Query.item(ids[q]), ids[c], method, rank, values[q] == values[c], labeler)
                count += 1
    return count
