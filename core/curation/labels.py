"""Relevance labels: one committed write per judgement, full history, CSV exchange between teams."""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.catalog import activity
from core.catalog.db import Catalog, inserted_id, writing
from core.curation.grades import GOOD, grade_of, parse_grade
from core.files.atomic import output_text_writer
from core.files.csv_header import header_problem
from core.files.csv_injection import neutralise, restore
from core.files.encoding import EncodingError, csv_field_limit, open_text
from core.files.output_path import check_output
from core.files.report import ImportReport
from core.files.yes_no import NO, YES, yes_no
from core.methods import UnknownMethod, get_spec
from core.team.access import Action, require

CSV_COLUMNS = (
    "query_kind",
    "query_key",
    "candidate_id",
    "method",
    "rank",
    "relevant",
    "labeler",
    "note",
    "created_at",
    "grade",
)
NUMERIC_COLUMNS = {"rank", "relevant"}
FUTURE_SLACK = timedelta(days=1)  # clocks differ; a label from further ahead is refused
MAX_RANK = 1_000_000  # a result position; anything larger is a typo (and overflows SQLite)
MAX_NOTE = 10_000  # characters in a label's note
CSV_FIELD_LIMIT = 1024 * 1024  # a longer cell is refused by the reader with the row number
RELEVANT = YES | {"relevant"}
NOT_RELEVANT = NO | {"not relevant"}
SHA256 = re.compile(r"[0-9a-f]{64}")  # an uploaded photo's key


@dataclass(frozen=True)
class Query:
    """What a label is about: a catalog item, or an uploaded photo (by content hash)."""

    kind: str  # "item" or "upload"
    key: str  # item id or sha256

    @classmethod
    def item(cls, item_id: str) -> Query:
        return cls("item", str(item_id))

    @classmethod
    def upload(cls, sha256: str) -> Query:
        return cls("upload", sha256)


class LabelError(ValueError):
    """A label that cannot be stored, in one line."""


def add_label(
    db: Catalog,
    query: Query,
    candidate_id: str,
    method: str,
    rank: int,
    relevant: bool,
    labeler: str,
    note: str | None = None,
    *,
    grade: str | None = None,
) -> int:
    """Store one judgement immediately (its own transaction); return its id.

    A `grade` (good, close, wrong) makes it a graded verdict; `relevant` then follows from it
    (only good is relevant). With sign-in on, the labeller is the signed-in person, whatever
    `labeler` says; NotAllowed for someone who may not label. The same verdict as the pair's latest
    (same person, grade, note, list and place: a double click, a rerun that sends it again) is not
    stored twice: its id is returned."""
    labeler = require(Action.LABEL).named(labeler)
    if not labeler:
        raise LabelError("a labeler name is needed")
    if not 1 <= int(rank) <= MAX_RANK:
        raise LabelError(f"rank {rank} is not between 1 and {MAX_RANK:,}")
    if query.kind not in ("item", "upload"):
        raise LabelError(f"unknown query kind {query.kind!r}")
    if query.kind == "item" and not _item_exists(db, query.key):
        raise LabelError(f"no catalog item {query.key!r}")
    if not _item_exists(db, candidate_id):
        raise LabelError(f"no catalog item {candidate_id!r}")
    try:
        grade = parse_grade(grade)
    except ValueError as exc:
        raise LabelError(str(exc)) from None
    if grade is not None:
        relevant = grade == GOOD
    row = (query.kind, query.key, str(candidate_id), method, int(rank), int(bool(relevant)), labeler, note, grade)
    with writing(db) as conn:  # the pair's latest verdict read and the new one appended under one lock
        latest = conn.execute(
            "SELECT id, method, rank, relevant, labeler, note, grade FROM labels "
            "WHERE query_kind = ? AND query_key = ? AND candidate_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
            row[:3],
        ).fetchone()
        if latest is not None and latest[1:] == row[3:]:
            return latest[0]  # the same verdict again (a double click, a resent request): stored once
        cursor = conn.execute(
            "INSERT INTO labels (query_kind, query_key, candidate_id, method, rank, relevant, labeler, note, grade) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        activity.note(db, Action.LABEL, f"{query.kind} {query.key} → {candidate_id}: {grade or relevant}", labeler)
    return inserted_id(cursor)


def _item_exists(db: Catalog, item_id: str) -> bool:
    return db.execute("SELECT 1 FROM items WHERE id = ?", (str(item_id),)).fetchone() is not None


def current_labels(db: Catalog, query: Query) -> dict[str, bool]:
    """Candidate id -> latest judgement for one query."""
    rows = db.execute(
        "SELECT candidate_id, relevant FROM current_labels WHERE query_kind = ? AND query_key = ?",
        (query.kind, query.key),
    )
    return {candidate: bool(relevant) for candidate, relevant in rows}


def current_grades(db: Catalog, query: Query) -> dict[str, str]:
    """Candidate id -> latest verdict as a grade (good, close, wrong) for one query."""
    rows = db.execute(
        "SELECT candidate_id, relevant, grade FROM current_labels WHERE query_kind = ? AND query_key = ?",
        (query.kind, query.key),
    )
    return {candidate: grade_of(relevant, grade) for candidate, relevant, grade in rows}


def current_judges(db: Catalog, query: Query) -> dict[str, str]:
    """Candidate id -> who gave the latest verdict, for one query."""
    rows = db.execute(
        "SELECT candidate_id, labeler FROM current_labels WHERE query_kind = ? AND query_key = ?",
        (query.kind, query.key),
    )
    return dict(rows.fetchall())


def history(db: Catalog, query: Query, candidate_id: str) -> list[dict]:
    """Every judgement of one pair, oldest first."""
    return list(
        db.query(
            "SELECT * FROM labels WHERE query_kind = ? AND query_key = ? AND candidate_id = ? ORDER BY created_at, id",
            (query.kind, query.key, str(candidate_id)),
        )
    )


@dataclass(frozen=True)
class LabelCounts:
    """How much has been judged: queries, current labels, relevant ones."""

    queries: int
    labels: int
    relevant: int


def label_counts(db: Catalog) -> LabelCounts:
    """How much has been judged: queries, current labels, relevant ones."""
    row = db.execute(
        "SELECT count(DISTINCT query_kind || ':' || query_key), count(*), coalesce(sum(relevant), 0) "
        "FROM current_labels"
    ).fetchone()
    return LabelCounts(queries=row[0], labels=row[1], relevant=row[2])


def next_query(
    db: Catalog, order: str = "unlabelled", category: str | None = None, seed: int | None = None
) -> str | None:
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


def export_labels(db: Catalog, path: str | Path, force: bool = False) -> int:
    """Write the whole label history as CSV (atomically), oldest first; return the row count.

    Text cells a spreadsheet would run as formulas get a leading quote, which import removes.
    An existing file at `path` that is not a labels CSV is replaced only with `force`.
    """
    require(Action.EXPORT)
    check_output(path, db, CSV_COLUMNS, "utf-8", force)
    count = 0
    with output_text_writer(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in db.execute(f"SELECT {', '.join(CSV_COLUMNS)} FROM labels ORDER BY created_at, id"):
            writer.writerow(
                [value if column in NUMERIC_COLUMNS else neutralise(value) for column, value in zip(CSV_COLUMNS, row)]
            )
            count += 1
    activity.record(db, Action.EXPORT, f"labels: {count:,} rows to {Path(path).name}")
    return count


def import_labels(db: Catalog, path: str | Path) -> ImportReport:
    """Merge a labels CSV; its rows, in file order, are history appended after what is stored.

    A verdict is `relevant` (yes/no) or `grade` (good, close, wrong; yes = good, no = wrong), or both
    when they agree; files without a grade column (older exports) read as before. Bad rows are reported by row number. `created_at` must be ISO-8601 (stored as UTC
    milliseconds); an empty one gets the import time, and equal times keep file order. The
    merge is idempotent: a row is new only if the file holds more copies of it (same pair,
    labeller, judgement, method, rank, note and time; any stored time when the file gives
    none) than the catalog does, so importing a file twice, or an export into its own
    catalog, adds nothing. Admins only (the rows keep the labellers the file names).
    """
    require(Action.IMPORT)
    report = ImportReport()
    good: list[tuple] = []
    now = datetime.now(UTC)
    try:
        with open_text(path) as (handle, note):
            if note:
                report.problem(Path(path).name, note)
            reader = csv.DictReader(handle)
            with _readable(reader):
                problem = header_problem(reader.fieldnames or [])
                if problem:
                    report.problem(Path(path).name, f"{problem}; nothing imported")
                    return report
                columns = reader.fieldnames or []
                missing = [c for c in ("query_key", "candidate_id", "method", "labeler") if c not in columns]
                if "relevant" not in columns and "grade" not in columns:
                    missing.append("relevant (or grade)")
                if missing:
                    report.problem(Path(path).name, f"missing column(s): {', '.join(missing)}")
                    return report
                for line, row in enumerate(reader, start=2):
                    report.rows += 1
                    try:
                        good.append(_label_row(db, row, now))
                    except LabelError as exc:
                        report.problem(f"row {line}", str(exc))
    except (EncodingError, LabelError) as exc:
        report.problem(Path(path).name, str(exc))
        return report
    stamp = _stored_time(now)
    with db.conn:
        db.conn.execute("BEGIN IMMEDIATE")  # count what is stored and append under one lock
        seen: dict[tuple, int] = {}
        new = []
        for label in good:
            seen[label] = seen.get(label, 0) + 1
            if seen[label] > _stored_copies(db, label):
                new.append(label[:-1] + (label[-1] or stamp,))
        db.conn.executemany(
            "INSERT INTO labels (query_kind, query_key, candidate_id, method, rank, relevant, labeler, note, "
            "grade, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            new,
        )
        activity.note(db, Action.IMPORT, f"labels: {len(new):,} new from {Path(path).name}")
    report.items = len(new)
    report.duplicates = len(good) - len(new)
    return report


@contextmanager
def _readable(reader: csv.DictReader) -> Iterator[None]:
    """Read the header and rows within: a malformed file (say, a cell over the size limit) is one LabelError."""
    try:
        with csv_field_limit(CSV_FIELD_LIMIT):
            yield
    except csv.Error as exc:
        raise LabelError(f"unreadable CSV at line {reader.line_num}: {exc}; nothing was imported") from None


def _stored_copies(db: Catalog, row: tuple) -> int:
    """How many stored labels equal an imported row (any time when the row gives none)."""
    where = (
        "query_kind = ? AND query_key = ? AND candidate_id = ? AND method = ? AND rank = ? "
        "AND relevant = ? AND labeler = ? AND note IS ? AND grade IS ?"
    )
    if row[-1] is None:
        return db.execute(f"SELECT count(*) FROM labels WHERE {where}", row[:-1]).fetchone()[0]
    return db.execute(f"SELECT count(*) FROM labels WHERE {where} AND created_at = ?", row).fetchone()[0]


def _stored_time(moment: datetime) -> str:
    """The stored time format: UTC with milliseconds, e.g. 2024-05-01T09:30:00.000Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str, now: datetime) -> str:
    """An ISO-8601 time in the stored format (no zone means UTC); raise LabelError."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise LabelError(f"created_at {_shown(text)} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > now + FUTURE_SLACK:
        raise LabelError(f"created_at {_shown(text)} is in the future")
    try:
        return _stored_time(moment)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise LabelError(f"created_at {_shown(text)} is out of range") from None


def _shown(value: str | None, limit: int = 40) -> str:
    """A cell quoted for a one-line message, cut to `limit` characters."""
    value = value or ""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _known_method(db: Catalog, name: str) -> str:
    """`name`, when it is a built-in method or one tuned in this catalog; LabelError otherwise."""
    if not name:
        raise LabelError("method is empty")
    try:
        return get_spec(name, db).name
    except UnknownMethod:
        raise LabelError(f"method {_shown(name)} is neither built in nor tuned in this catalog") from None


def _label_row(db: Catalog, row: dict[str, str | None], now: datetime) -> tuple:
    row = {k: restore(v) for k, v in row.items()}  # undo the export's formula quoting
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
    if kind == "upload" and not SHA256.fullmatch(key.lower()):
        raise LabelError(f"query_key {_shown(key)} of an upload is not a photo's SHA-256 (64 hexadecimal digits)")
    key = key.lower() if kind == "upload" else key
    method = _known_method(db, (row.get("method") or "").strip())
    if not _item_exists(db, candidate):
        raise LabelError(f"candidate item {candidate!r} is not in the catalog")
    try:
        verdict = yes_no(relevant, RELEVANT, NOT_RELEVANT)
    except ValueError:
        raise LabelError(f"relevant {_shown(row.get('relevant'))} is not yes/no") from None
    try:
        grade = parse_grade(row.get("grade"))
    except ValueError:
        raise LabelError(f"grade {_shown(row.get('grade'))} is not good/close/wrong") from None
    if verdict is None and grade is None:
        raise LabelError("relevant (yes/no) or grade (good/close/wrong) is needed")
    if grade is not None and verdict is not None and verdict != (grade == GOOD):
        raise LabelError(f"grade {grade!r} disagrees with relevant {_shown(row.get('relevant'))}")
    good = grade == GOOD if grade is not None else bool(verdict)  # one of them is given (checked above)
    try:
        rank = int(row.get("rank") or 1)
    except ValueError:
        raise LabelError(f"rank {_shown(row.get('rank'))} is not a whole number") from None
    if not 1 <= rank <= MAX_RANK:
        raise LabelError(f"rank {rank} is not between 1 and {MAX_RANK:,}")
    labeler = (row.get("labeler") or "").strip()
    if not labeler:
        raise LabelError("labeler is empty")
    if len(row.get("note") or "") > MAX_NOTE:
        raise LabelError(f"note is longer than {MAX_NOTE:,} characters")
    created = (row.get("created_at") or "").strip()
    return (
        kind,
        key,
        candidate,
        method,
        rank,
        int(good),
        labeler,
        (row.get("note") or None),
        grade,
        parse_time(created, now) if created else None,
    )


def judge_by_attributes(
    db: Catalog,
    ids: list[str],
    vectors,
    queries: list[int],
    attributes: str,
    labeler: str,
    method: str,
    k: int = 10,
) -> int:
    """Label each query row's top k among `ids` (cosine on `vectors`) as relevant when every listed
    attribute matches (`"category,colour"`): simulated judgements from catalog metadata. Returns the count."""
    from core.curation.evaluate import joint_values
    from core.search.neighbours import ExactNeighbours

    values = dict(zip(ids, joint_values(db, ids, attributes)))
    index = ExactNeighbours(ids, vectors)
    ranked = index.neighbours(vectors[queries], k, exclude=[{ids[q]} for q in queries])
    count = 0
    for q, row in zip(queries, ranked):
        for rank, (c, _) in enumerate(row, start=1):
            if values[ids[q]] is not None and values[c] is not None:
                add_label(db, Query.item(ids[q]), c, method, rank, values[ids[q]] == values[c], labeler)
                count += 1
    return count
