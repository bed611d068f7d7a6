"""Who did what, when (the `activity` table): one row for every guarded change to a catalog, the person
being the signed-in email (`core.team.access`); without sign-in, the name typed, else "local"."""

from __future__ import annotations

from dataclasses import dataclass

from core.catalog.db import Catalog
from core.team.access import Action, acting, require

LOCAL_NAME = "local"  # who did it, without sign-in and no name typed
MAX_DETAIL = 500  # characters of a row's detail


@dataclass(frozen=True)
class Activity:
    """One thing someone did."""

    id: int
    at: str  # ISO time, UTC
    person: str
    action: str  # an Action's name, lower case: label, curate, export, ...
    detail: str


def record(db: Catalog, action: Action, detail: str = "", typed: str | None = None) -> None:
    """Note, in a transaction of its own, that the person acting took `action` (`typed`: the name
    given, recorded only without sign-in). A catalog opened read-only (the command line's exports) is
    left as it is: what reads it changes nothing worth noting."""
    if getattr(db, "read_only", False):
        return
    with db.conn:
        note(db, action, detail, typed)


def note(db: Catalog, action: Action, detail: str = "", typed: str | None = None) -> None:
    """`record` inside the caller's transaction (so the change and its row are stored together)."""
    person = acting()
    who = (person.named(typed) if person else "") or LOCAL_NAME
    db.conn.execute(
        "INSERT INTO activity (person, action, detail) VALUES (?, ?, ?)",
        (who, action.name.lower(), detail[:MAX_DETAIL]),
    )


def read_activity(db: Catalog, person: str | None = None, limit: int = 500) -> list[Activity]:
    """What was done, newest first, by anyone or by `person` only; at most `limit` rows (admins only)."""
    require(Action.ACTIVITY)
    where, args = ("WHERE person = ?", (person,)) if person else ("", ())
    rows = db.execute(
        f"SELECT id, at, person, action, detail FROM activity {where} ORDER BY id DESC LIMIT ?", (*args, int(limit))
    )
    return [Activity(*row) for row in rows]


def people(db: Catalog) -> list[str]:
    """Everyone who did something, alphabetically (admins only)."""
    require(Action.ACTIVITY)
    return [row[0] for row in db.execute("SELECT DISTINCT person FROM activity ORDER BY person")]
