"""Who is acting, and the one check a guarded library function makes: `require(Action.LABEL)`.

The person acting is set for a stretch of work with `acting_as(person)` (the app around each run of a
page, the command line as the local admin); jobs started there carry it (`core.jobs`). Without sign-in
(`LOOKALIKE_AUTH` unset) nobody set means the local user, who may do everything; with sign-in, nobody
set means nobody, who may do nothing. So no page, URL or session trick gets round a role: the library
itself refuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import Enum

from core.settings import settings
from core.team.roles import LOCAL, Person, Role


class NotAllowed(PermissionError):
    """An action the person acting may not take, in one line."""


class Action(Enum):
    """What a role is needed for: (what it is called, the least role that may do it)."""

    LABEL = ("label", Role.LABELLER)
    CURATE = ("pin, hide or set rules", Role.CURATOR)
    EXPORT = ("export", Role.CURATOR)
    IMPORT = ("import", Role.ADMIN)
    EMBED = ("embed", Role.ADMIN)
    INDEX = ("build an index", Role.ADMIN)
    TUNE = ("tune a method", Role.ADMIN)
    TRAIN = ("train a model", Role.ADMIN)
    DEVICE = ("choose the device", Role.ADMIN)
    ACTIVITY = ("see the activity", Role.ADMIN)

    @property
    def words(self) -> str:
        return self.value[0]

    @property
    def role(self) -> Role:
        return self.value[1]


_acting: ContextVar[Person | None] = ContextVar("lookalike_acting", default=None)


@contextmanager
def acting_as(person: Person | None) -> Iterator[Person | None]:
    """Everything inside acts as `person` (None: nobody)."""
    token = _acting.set(person)
    try:
        yield person
    finally:
        _acting.reset(token)


def acting() -> Person | None:
    """The person acting here: the one `acting_as` set, else the local user when sign-in is off, else None."""
    person = _acting.get()
    if person is None and settings().auth is None:
        return LOCAL
    return person


def may(person: Person | None, action: Action) -> bool:
    """Whether `person` may take `action` (nobody may take none)."""
    return person is not None and person.role >= action.role


def require(action: Action) -> Person:
    """The person acting, when they may take `action`; NotAllowed (one line) otherwise."""
    person = acting()
    if person is None:
        raise NotAllowed(f"sign in to {action.words}")
    if not may(person, action):
        raise NotAllowed(f"{person.email} is {person.role.a}: to {action.words} takes {action.role.a} or above")
    return person
