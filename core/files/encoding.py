"""Open CSV files in the encoding they were written in, never replacing characters silently.

UTF-8 (with or without a byte-order mark) and UTF-16 with a byte-order mark are read as they
are. A file that is not valid UTF-8 is read as Windows-1252 (cp1252), the usual encoding of
spreadsheets saved on Windows, or as Latin-1 when it holds bytes cp1252 leaves undefined; the
caller reports that choice as a note. A file that looks like UTF-16 without a byte-order mark
is refused with one line.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

CHUNK = 1024 * 1024


class EncodingError(ValueError):
    """A text file whose encoding cannot be told, in one line."""


def file_problem(path: str | Path) -> str | None:
    """Why `path` is not a file to read a CSV from (missing, a folder, a device, FIFO or socket), or None."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    if stat.S_ISDIR(mode):
        return "is a folder, not a CSV file"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a device, FIFO or socket); give a CSV file"
    return None


def _open_regular(path: Path):
    """`path` opened for binary reading, only if it is a regular file (never blocks on a FIFO)."""
    problem = file_problem(path)
    if problem:
        raise EncodingError(f"{path.name}: {problem}")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise EncodingError(f"{path.name}: is not a regular file (a device, FIFO or socket); give a CSV file")
    return handle


def detect(path: str | Path) -> tuple[str, str | None]:
    """(Python codec name, note for the user or None) for the text file at `path`; EncodingError
    for a file that is not a regular file or whose encoding cannot be told."""
    path = Path(path)
    with _open_regular(path) as handle:
        head = handle.read(4)
        for bom, name, label in (
            (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
            (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
            (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
        ):
            if head.startswith(bom):
                if not _decodes(handle, name):
                    raise EncodingError(f"{path.name} has a {label} byte-order mark but is not valid {label}")
                return name, None
        handle.seek(0)
        sample = handle.read(4096)
        if sample and sample.count(0) > len(sample) // 4:
            raise EncodingError(
                f"{path.name} looks like UTF-16 without a byte-order mark; save it as UTF-8 and import it again"
            )
        if _decodes(handle, "utf-8"):
            return "utf-8", None
        name, label = ("cp1252", "Windows-1252") if _decodes(handle, "cp1252") else ("latin-1", "Latin-1")
    return name, f"{path.name} is not UTF-8; read it as {label}: check accented letters, or save it as UTF-8"


def _decodes(handle, encoding: str) -> bool:
    """Whether the whole file decodes strictly in `encoding` (read in chunks, never all at once)."""
    handle.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        while chunk := handle.read(CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


@contextlib.contextmanager
def open_text(path: str | Path) -> Iterator[tuple[TextIO, str | None]]:
    """Open a CSV for reading in its detected encoding: yields (handle, note or None)."""
    encoding, note = detect(path)
    with open_as(path, encoding) as handle:
        yield handle, note


@contextlib.contextmanager
def csv_field_limit(limit: int) -> Iterator[None]:
    """Let the csv module read cells up to `limit` characters within the block (the limit is
    process-wide, so it is put back after)."""
    import csv

    before = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(before)


def open_as(path: str | Path, encoding: str) -> TextIO:
    """Open a regular file as CSV text in a known encoding (from `detect`); EncodingError otherwise."""
    return io.TextIOWrapper(_open_regular(Path(path)), encoding=encoding, errors="strict", newline="")
