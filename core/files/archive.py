"""Unpack a zip of photos safely: flat into one folder, no path from the archive used as a path.

Every entry is checked before a byte is written: folders, links and files of other kinds are
skipped, a name keeps only its last part (so `../../x.jpg` and `C:\\x.jpg` become `x.jpg` inside
the target folder), only the allowed suffixes land, and the archive is refused whole when it
holds more than `max_files` photos or more than `max_bytes` once unpacked. Bytes are counted as
they are written, so an entry that holds more than its header says cannot get past the caps.
"""

from __future__ import annotations

import io
import stat
import zipfile
import zlib
from collections.abc import Collection
from pathlib import Path, PureWindowsPath

from core.files.report import ImportReport

MAX_FILES = 20_000
MAX_BYTES = 2 * 1024**3  # unpacked, all photos together
MAX_FILE_BYTES = 64 * 1024 * 1024  # one photo, as core.catalog.images allows on disk
_CHUNK = 1024 * 1024


class ArchiveRefused(ValueError):
    """A zip that is not unpacked at all, in one line."""


def _name(info: zipfile.ZipInfo) -> str:
    """The entry's file name without any folder (either slash), '' for none."""
    return PureWindowsPath(info.filename.replace("/", "\\")).name


def _is_regular(info: zipfile.ZipInfo) -> bool:
    """Not a folder, and (when the zip records Unix modes) a plain file, not a link or device."""
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no file type
    return not info.is_dir() and kind in (0, stat.S_IFREG)


def unpack_photos(
    data: bytes,
    folder: Path,
    suffixes: Collection[str],
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_BYTES,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> ImportReport:
    """Unpack the photos of zip `data` flat into `folder`; `images_ok` counts those written.

    Entries left out are reported by name with the reason. ArchiveRefused when the archive is not a
    zip or its headers break a cap (nothing written), or when an entry holds more than its header
    says (unpacking stops there). A name met twice keeps its first file.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ArchiveRefused(f"not a zip file ({exc})") from None
    report = ImportReport()
    chosen: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = _name(info)
        if info.is_dir() or not name or name.startswith(".") or "__MACOSX" in info.filename:
            continue
        if not _is_regular(info):
            report.problem(info.filename, "not a plain file (a link or a device): skipped")
        elif Path(name).suffix.lower() not in suffixes:
            report.problem(info.filename, f"not a photo ({', '.join(sorted(suffixes))}): skipped")
        elif info.file_size > max_file_bytes:
            report.problem(info.filename, f"larger than {max_file_bytes // 2**20} MB: skipped")
        elif name in chosen:
            report.problem(info.filename, f"a second photo named {name}: the first one kept")
        else:
            chosen[name] = info
    if len(chosen) > max_files:
        raise ArchiveRefused(f"{len(chosen):,} photos in the zip; at most {max_files:,} at a time")
    declared = sum(info.file_size for info in chosen.values())
    if declared > max_bytes:
        raise ArchiveRefused(f"{declared / 2**20:,.0f} MB of photos once unpacked; at most {max_bytes // 2**20:,} MB")
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, info in chosen.items():
        try:
            written += _copy(archive, info, folder / name, min(info.file_size, max_file_bytes), max_bytes - written)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            (folder / name).unlink(missing_ok=True)
            report.problem(info.filename, f"damaged in the zip ({exc}): skipped")
            continue
        report.images_ok += 1
    return report


def _copy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limit: int, budget: int) -> int:
    """Write one entry, never more than `limit` bytes nor the `budget` left; return the bytes written."""
    done = 0
    with archive.open(info) as source, open(target, "wb") as sink:
        while chunk := source.read(_CHUNK):
            done += len(chunk)
            if done > limit or done > budget:
                sink.close()
                target.unlink()
                raise ArchiveRefused(f"{info.filename} holds more than its header says; unpacking stopped")
            sink.write(chunk)
    return done
