"""Pins, hides and rules: the team's curation decisions, each kept with who made it and when.

Every change is one appended row (migrations/0007_curation.sql): the latest row of a subject (a pin
of a candidate in an item's list, a hidden item, a rule) counts. Undoing a change appends the
subject's previous value. `curation_snapshot` reads what is in force in three queries, for every
list that leaves the catalog; `export_curation` / `import_curation` move the history between catalogs.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from core.catalog import activity
from core.catalog.db import Catalog, inserted_id, writing
from core.curation.labels import LabelError, parse_time
from core.curation.rules import Rules, parse_rule
from core.files.atomic import atomic_text_writer
from core.files.csv_header import header_problem
from core.files.csv_injection import neutralise, restore
from core.files.encoding import EncodingError, open_text
from core.files.output_path import check_output
from core.files.report import ImportReport
from core.search import caches
from core.team.access import Action, require

KINDS = ("pin", "hide", "rule")
MAX_POSITION = 1000  # a pinned place; the API answers at most 1,000 results
CSV_COLUMNS = ("kind", "item_id", "candidate_id", "rule", "value", "author", "created_at", "undoes")


class CurationError(ValueError):
    """A curation change that cannot be made, in one line."""


@dataclass(frozen=True)
class Change:
    """One row of the history: `value` None means the subject was taken away (unpin, unhide, rule off)."""

    id: int
    kind: str
    item_id: str
    candidate_id: str
    rule: str
    value: str | None
    author: str
    created_at: str
    undoes: int | None

    def as_dict(self) -> dict:
        return asdict(self)

    def subject(self) -> str:
        """What it is about, in words: 'pin 15970 in 39386', 'hide 39386', 'rule in_stock'."""
        if self.kind == "pin":
            return f"pin {self.candidate_id} in {self.item_id}"
        return f"hide {self.item_id}" if self.kind == "hide" else f"rule {self.rule}"


@dataclass
class Snapshot:
    """The decisions in force: pins per item (position, candidate; by position), hidden items, rules."""

    pins: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)
    rules: Rules = field(default_factory=Rules)


_SELECT = f"SELECT id, {', '.join(CSV_COLUMNS)}"


def _author(author: str | None) -> str:
    author = (author or "").strip()
    if not author:
        raise CurationError("say who makes the change (a name)")
    return author


def _check_item(db: Catalog, item_id: str) -> str:
    item_id = str(item_id).strip()
    if db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is None:
        raise CurationError(f"no catalog item {item_id!r}")
    return item_id


def _append(db: Catalog, kind: str, value: str | None, author: str, undoes: int | None = None, **subject) -> Change:
    """Store one change, by the signed-in person when sign-in is on (else by `author`); NotAllowed for
    someone who may not curate. The subject's latest change is read under the same lock, so the same
    change by the same person again (a double click) is not stored twice: the latest is returned."""
    author = _author(require(Action.CURATE).named(author))
    row = {"item_id": "", "candidate_id": "", "rule": "", **subject}
    with writing(db) as conn:
        latest = conn.execute(
            "SELECT id, value, author, undoes FROM curation WHERE kind = ? AND item_id = ? AND candidate_id = ? "
            "AND rule = ? ORDER BY created_at DESC, id DESC LIMIT 1",
            (kind, row["item_id"], row["candidate_id"], row["rule"]),
        ).fetchone()
        if latest is not None and undoes is None and latest[1:] == (value, author, None):
            return change(db, latest[0])
        cursor = conn.execute(
            "INSERT INTO curation (kind, item_id, candidate_id, rule, value, author, undoes) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (kind, row["item_id"], row["candidate_id"], row["rule"], value, author, undoes),
        )
        subject_text = " ".join(f"{k}={v}" for k, v in subject.items())
        what = f"undo #{undoes}: " if undoes else ""
        activity.note(
            db, Action.CURATE, f"{what}{kind} {subject_text} = {value if value is not None else 'off'}", author
        )
    return change(db, inserted_id(cursor))


def pin(db: Catalog, item_id: str, candidate_id: str, position: int = 1, author: str = "") -> Change:
    """Put `candidate_id` at place `position` (1 = first) of `item_id`'s list, whatever the model thinks."""
    item_id, candidate_id = _check_item(db, item_id), _check_item(db, candidate_id)
    if item_id == candidate_id:
        raise CurationError("an item cannot be pinned in its own list")
    if not 1 <= int(position) <= MAX_POSITION:
        raise CurationError(f"position {position} is not between 1 and {MAX_POSITION}")
    return _append(db, "pin", str(int(position)), author, item_id=item_id, candidate_id=candidate_id)


def unpin(db: Catalog, item_id: str, candidate_id: str, author: str = "") -> Change:
    """Take a pin away (CurationError when there is none)."""
    if not _current(db, "pin", item_id=str(item_id), candidate_id=str(candidate_id)):
        raise CurationError(f"{candidate_id} is not pinned in {item_id}'s list")
    return _append(db, "pin", None, author, item_id=str(item_id), candidate_id=str(candidate_id))


def hide(db: Catalog, item_id: str, author: str = "") -> Change:
    """Keep `item_id` out of every curated list (discontinued, recalled, a bad photo)."""
    return _append(db, "hide", "1", author, item_id=_check_item(db, item_id))


def unhide(db: Catalog, item_id: str, author: str = "") -> Change:
    """Let a hidden item back into lists (CurationError when it is not hidden)."""
    if not _current(db, "hide", item_id=str(item_id)):
        raise CurationError(f"{item_id} is not hidden")
    return _append(db, "hide", None, author, item_id=str(item_id))


def set_rule(db: Catalog, name: str, value: str, author: str = "") -> Change:
    """Set a catalog-wide rule (`value` 'off' removes it); RuleError for an unknown rule or a bad value."""
    stored = parse_rule(name, value)
    name = name.strip().lower()
    if stored is None and not _current(db, "rule", rule=name):
        raise CurationError(f"rule {name} is not set")
    return _append(db, "rule", stored, author, rule=name)


def _current(db: Catalog, kind: str, **subject) -> str | None:
    row = {"item_id": "", "candidate_id": "", "rule": "", **subject}
    found = db.execute(
        "SELECT value FROM curation WHERE kind = ? AND item_id = ? AND candidate_id = ? AND rule = ? "
        "ORDER BY created_at DESC, id DESC LIMIT 1",
        (kind, row["item_id"], row["candidate_id"], row["rule"]),
    ).fetchone()
    return found[0] if found else None


def change(db: Catalog, change_id: int) -> Change:
    row = db.execute(f"{_SELECT} FROM curation WHERE id = ?", (int(change_id),)).fetchone()
    if row is None:
        raise CurationError(f"no curation change #{change_id}; `curate history` lists them")
    return Change(*row)


def in_force(db: Catalog) -> list[Change]:
    """Every pin, hide and rule in force, with who set it and when (rules, hides, then pins)."""
    rows = db.execute(f"{_SELECT} FROM current_curation ORDER BY kind DESC, item_id, CAST(value AS INTEGER), id")
    return [Change(*row) for row in rows]


def history(db: Catalog) -> list[Change]:
    """Every change, oldest first."""
    return [Change(*row) for row in db.execute(f"{_SELECT} FROM curation ORDER BY created_at, id")]


def undo(db: Catalog, change_id: int | None = None, author: str = "") -> Change:
    """Reverse a change (default: the latest) by restoring its subject's previous value; the undo is a
    change of its own. A change that a later one of the same subject replaced cannot be undone (checked
    under the write lock: two people undoing the same change at once undo it once)."""
    with writing(db):
        return _undo(db, change_id, author)


def _undo(db: Catalog, change_id: int | None, author: str) -> Change:
    if change_id is None:
        row = db.execute("SELECT id FROM curation ORDER BY created_at DESC, id DESC LIMIT 1").fetchone()
        if row is None:
            raise CurationError("nothing to undo: no pins, hides or rules were ever set")
        change_id = row[0]
    target = change(db, change_id)
    subject = {"item_id": target.item_id, "candidate_id": target.candidate_id, "rule": target.rule}
    where = "kind = ? AND item_id = ? AND candidate_id = ? AND rule = ?"
    params = (target.kind, target.item_id, target.candidate_id, target.rule)
    latest = db.execute(
        f"SELECT id FROM curation WHERE {where} ORDER BY created_at DESC, id DESC LIMIT 1", params
    ).fetchone()[0]
    if latest != target.id:
        raise CurationError(f"#{target.id} ({target.subject()}) was replaced by #{latest}; undo that one")
    before = db.execute(
        f"SELECT value FROM curation WHERE {where} AND (created_at < ? OR (created_at = ? AND id < ?)) "
        "ORDER BY created_at DESC, id DESC LIMIT 1",
        (*params, target.created_at, target.created_at, target.id),
    ).fetchone()
    return _append(db, target.kind, before[0] if before else None, author, undoes=target.id, **subject)


_SNAPSHOTS: dict[tuple[str], tuple[tuple, Snapshot]] = {}  # catalog file -> (its history's size, snapshot)


def curation_snapshot(db: Catalog) -> Snapshot:
    """The decisions in force (do not change it), cached per process until the history grows (it is
    append-only: every change, undo and import adds rows)."""
    size = tuple(db.execute("SELECT max(id), count(*) FROM curation").fetchone())
    return caches.current(_SNAPSHOTS, (str(db.path),), size, lambda: _read_snapshot(db))


def _read_snapshot(db: Catalog) -> Snapshot:
    snapshot, rules = Snapshot(), {}
    for kind, item_id, candidate_id, rule, value in db.execute(
        "SELECT kind, item_id, candidate_id, rule, value FROM current_curation"
    ):
        if kind == "pin":
            snapshot.pins.setdefault(item_id, []).append((int(value), candidate_id))
        elif kind == "hide":
            snapshot.hidden.add(item_id)
        else:
            rules[rule] = value
    for placed in snapshot.pins.values():
        placed.sort()
    snapshot.rules = Rules.from_values(rules)
    return snapshot


def export_curation(db: Catalog, path: str | Path, force: bool = False) -> int:
    """Write the whole curation history as CSV (atomically), oldest first; return the row count."""
    require(Action.EXPORT)
    check_output(path, db, CSV_COLUMNS, "utf-8", force)
    changes = history(db)
    with atomic_text_writer(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for c in changes:
            writer.writerow(
                [
                    neutralise(v) if isinstance(v, str) else ("" if v is None else v)
                    for v in (c.kind, c.item_id, c.candidate_id, c.rule, c.value, c.author, c.created_at, c.undoes)
                ]
            )
    activity.record(db, Action.EXPORT, f"curation: {len(changes):,} changes to {Path(path).name}")
    return len(changes)


def import_curation(db: Catalog, path: str | Path) -> ImportReport:
    """Append a curation CSV's rows (in file order) to the history; rows already stored (same subject,
    value, author and time) are skipped, so importing a file twice adds nothing. Bad rows are reported by
    row number. `undoes` is kept as a note of the source catalog's change number only. Admins only."""
    require(Action.IMPORT)
    report, good, now = ImportReport(), [], datetime.now(UTC)
    try:
        with open_text(path) as (handle, note):
            if note:
                report.problem(Path(path).name, note)
            reader = csv.DictReader(handle)
            problem = header_problem(reader.fieldnames or [])
            missing = [c for c in CSV_COLUMNS[:-1] if c not in (reader.fieldnames or [])]
            if problem or missing:
                report.problem(Path(path).name, problem or f"missing column(s): {', '.join(missing)}")
                return report
            for line, row in enumerate(reader, start=2):
                report.rows += 1
                try:
                    good.append(_imported_row(db, {k: restore(v or "") for k, v in row.items() if k}, now))
                except (CurationError, LabelError, ValueError) as exc:
                    report.problem(f"row {line}", str(exc))
    except (EncodingError, csv.Error) as exc:
        report.problem(Path(path).name, str(exc))
        return report
    with db.conn:
        db.conn.execute("BEGIN IMMEDIATE")
        new = [
            row
            for row in good
            if db.execute(
                "SELECT 1 FROM curation WHERE kind = ? AND item_id = ? AND candidate_id = ? AND rule = ? "
                "AND value IS ? AND author = ? AND created_at = ?",
                row[:7],
            ).fetchone()
            is None
        ]
        db.conn.executemany(
            "INSERT INTO curation (kind, item_id, candidate_id, rule, value, author, created_at, undoes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            new,
        )
        activity.note(db, Action.IMPORT, f"curation: {len(new):,} new changes from {Path(path).name}")
    report.items, report.new, report.duplicates = len(new), len(new), len(good) - len(new)
    return report


def _imported_row(db: Catalog, row: dict[str, str], now: datetime) -> tuple:
    kind = row.get("kind", "").strip()
    if kind not in KINDS:
        raise CurationError(f"kind {kind!r} is not pin/hide/rule")
    item, candidate, rule = (row.get(c, "").strip() for c in ("item_id", "candidate_id", "rule"))
    value = row.get("value", "").strip() or None
    if kind in ("pin", "hide"):
        _check_item(db, item)
    if kind == "pin":
        _check_item(db, candidate)
        if value is not None and not (value.isdigit() and 1 <= int(value) <= MAX_POSITION):
            raise CurationError(f"pin position {value!r} is not between 1 and {MAX_POSITION}")
    if kind == "rule":
        value = parse_rule(rule, value or "off")
        rule = rule.strip().lower()
    created = row.get("created_at", "").strip()
    if not created:
        raise CurationError("created_at is empty")
    undoes = row.get("undoes", "").strip()
    return (
        kind,
        item if kind != "rule" else "",
        candidate if kind == "pin" else "",
        rule if kind == "rule" else "",
        value,
        _author(row.get("author")),
        parse_time(created, now),
        int(undoes) if undoes.isdigit() else None,
    )
