"""Refuse CSV output paths that would destroy the catalog, its indices, models or other files."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from core.files.atomic import is_stream

CATALOG_SUFFIXES = ("", "-wal", "-shm", "-journal")


class OutputRefused(ValueError):
    """An output path Lookalike will not write to, in one line."""


class CatalogFiles(Protocol):
    """What is checked of a catalog (core.catalog.db.Catalog is one): its file and its folders."""

    path: Path

    @property
    def index_dir(self) -> Path: ...

    @property
    def models_dir(self) -> Path: ...

    @property
    def trained_dir(self) -> Path: ...


def header_bytes(columns: Sequence[str], encoding: str) -> bytes:
    """The exact first line (byte-order mark included) that csv.writer gives `columns`."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(columns)
    return buffer.getvalue().encode(encoding)


def check_output(out: str | Path, db: CatalogFiles, columns: Sequence[str], encoding: str, force: bool = False) -> None:
    """Raise OutputRefused unless `out` may receive a CSV with header `columns`.

    Never: the catalog or its WAL/SHM/journal files, anything under the catalog's indices/,
    trained/ or models/ folders, a directory or other non-regular file. An existing file is replaced only if
    it starts with the same header (a CSV written by us) or with `force`. A stream (`/dev/stdout`, a pipe,
    a character device) is always accepted: it is written to as it goes, not replaced.
    """
    if is_stream(out):  # `>` / `>>` / `|` or a device: streamed to, never replaced (core.files.atomic)
        return
    target = Path(out).expanduser().resolve()
    catalog = db.path
    if any(target == catalog.with_name(catalog.name + suffix) for suffix in CATALOG_SUFFIXES):
        raise OutputRefused(f"refusing to write {out}: it is the catalog database (or its journal)")
    for folder in (db.index_dir.resolve(), db.models_dir.resolve(), db.trained_dir.resolve()):
        if target.is_relative_to(folder):
            raise OutputRefused(f"refusing to write {out}: it is inside the catalog's {folder.name}/ folder")
    if target.is_dir():
        raise OutputRefused(f"refusing to write {out}: it is a folder; name a .csv file in it")
    if target.exists() and not target.is_file():
        raise OutputRefused(f"refusing to write {out}: it is not a regular file")
    if target.exists() and not force:
        expected = header_bytes(columns, encoding)
        with open(target, "rb") as handle:
            first = handle.read(len(expected))
        if first != expected:
            raise OutputRefused(
                f"{out} exists and is not a CSV of this kind written by Lookalike; "
                "choose another name or use --force to replace it"
            )
