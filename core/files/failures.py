"""Catalog and I/O failures in one line for the user: a damaged catalog, a full disk, no memory.

Long runs (import, embedding) wrap these failures in `PartialWork`, whose message says how much
was finished and kept before the error, so the user knows that running the command again carries on.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

FAILURES = (sqlite3.Error, OSError, MemoryError)  # what a long run reports with how far it got


class PartialWork(RuntimeError):
    """A run stopped by a catalog or I/O failure after committing part of its work.

    `progress` says how far it got, e.g. "32 of 300 embedded"; the failure is the `__cause__`.
    """

    def __init__(self, failure: BaseException, progress: str):
        super().__init__(f"{failure}: {progress} before the error; run the same command again to carry on")
        self.progress = progress


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF  # the primary code of an extended one


def disk_full(exc: BaseException) -> bool:
    """ENOSPC from the OS, or SQLite's "database or disk is full"."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(exc, sqlite3.Error) and (_sqlite_code(exc) == sqlite3.SQLITE_FULL or "disk is full" in str(exc))


def damaged(exc: BaseException) -> bool:
    """SQLite found the catalog file corrupt ("database disk image is malformed")."""
    return isinstance(exc, sqlite3.DatabaseError) and (
        _sqlite_code(exc) == sqlite3.SQLITE_CORRUPT or "malformed" in str(exc)
    )


def recovery(catalog: Path) -> str:
    """How to get a damaged catalog back."""
    return (
        f"restore a backup of {catalog}, or copy out what is readable with "
        f'`sqlite3 {catalog} ".recover" | sqlite3 recovered.db` and use recovered.db'
    )


def busy_line(catalog: Path, detail: str = "database is locked") -> str:
    """The line for a catalog another program is writing to."""
    return f"the catalog {catalog} is busy ({detail}): another program is writing to it; try again when it is done"


def read_only_line(catalog: Path) -> str:
    """The line for a command that must write to a catalog it may only read."""
    return (
        f"the catalog {catalog} is read-only (its file or folder cannot be written, e.g. a read-only mount): "
        "this command writes to it; commands that only read it work, or copy it somewhere writable"
    )


def one_line(exc: BaseException, catalog: Path) -> str:
    """The user's line for a catalog, I/O or memory failure (the full traceback belongs in the log)."""
    if isinstance(exc, PartialWork) and exc.__cause__:
        return f"{one_line(exc.__cause__, catalog)}; {exc.progress} before the error"
    if disk_full(exc):
        return f"the disk is full ({exc}); finished work was kept: free some space and run the same command again"
    if damaged(exc):
        return f"the catalog {catalog} is damaged ({exc}); {recovery(catalog)}"
    if isinstance(exc, MemoryError):
        return (
            f"out of memory{f' ({exc})' if str(exc) else ''}; close other programs, or use a smaller "
            "--batch-size or --limit, then run the same command again"
        )
    if isinstance(exc, sqlite3.OperationalError) and _sqlite_code(exc) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return busy_line(catalog, str(exc))
    if isinstance(exc, sqlite3.Error) and _sqlite_code(exc) == sqlite3.SQLITE_READONLY:
        return read_only_line(catalog)
    if isinstance(exc, sqlite3.Error):
        return f"catalog {catalog}: {exc}"
    return str(exc)


@contextmanager
def how_far(done: Callable[[], str]) -> Iterator[None]:
    """Turn a catalog, I/O or memory failure into `PartialWork` saying `done()` (e.g. "32 of 300 embedded")."""
    try:
        yield
    except FAILURES as exc:
        raise PartialWork(exc, done()) from exc
