"""Write files so that readers see the old file or the whole new one, never half of it."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

_UMASK = os.umask(0)
os.umask(_UMASK)


def process_alive(pid: int) -> bool:
    """Whether process `pid` still runs on this machine (a dead writer's leftovers may go)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clear_leftovers(path: Path, suffix: str = ".part") -> list[Path]:
    """Remove temporary files of `path` whose writer died (kill -9, power cut); return them.

    Temporary names carry the writer's process id, so a live writer's file is never touched.
    """
    removed = []
    for old in path.parent.glob(f".{glob.escape(path.name)}.*{suffix}"):
        pid = old.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            old.unlink(missing_ok=True)
            removed.append(old)
    return removed


def target_of(path: str | Path) -> Path:
    """The file a write to `path` must replace: `path`, or the file its symbolic links lead to.

    Raises OSError when that file exists and is not a regular file.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        raise OSError(errno.EINVAL, "not a regular file: refusing to replace it", str(path))
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    A symbolic link is followed: its target is replaced and the link stays a link. A target that
    exists and is not a regular file (a device such as /dev/stdout, a FIFO, a folder) is refused
    with OSError before anything is written.
    """
    path = target_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clear_leftovers(path, suffix or ".part")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=suffix or ".part")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the finished file gets ordinary permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_DESCRIPTOR = re.compile(r"^/(?:dev/fd|proc/(?:self|thread-self|\d+)/fd)/(\d+)$")
_STANDARD = {"/dev/stdout": 1, "/dev/stderr": 2}


def descriptor_of(path: str | Path) -> int | None:
    """The open file descriptor of this process that `path` names (`/dev/stdout`, `/dev/fd/3`,
    `/proc/self/fd/1`, or a link to one of them), else None."""
    text = os.path.abspath(str(path))
    for _ in range(8):  # a few links deep: /dev/stdout -> /proc/self/fd/1
        if text in _STANDARD:
            return _STANDARD[text]
        match = _DESCRIPTOR.match(text)
        if match and (text.startswith(("/dev/", "/proc/self", "/proc/thread-self")) or f"/{os.getpid()}/" in text):
            return int(match.group(1))
        try:
            text = os.path.join(os.path.dirname(text), os.readlink(text))
        except OSError:
            return None
    return None


def is_stream(path: str | Path) -> bool:
    """Whether writing to `path` streams rather than replaces a file: one of this process's open
    descriptors (the shell's `>`, `>>` or `|`), a pipe (FIFO) or a character device (/dev/null, a terminal)."""
    if descriptor_of(path) is not None:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


@contextlib.contextmanager
def output_text_writer(path: str | Path, encoding: str = "utf-8") -> Iterator[TextIO]:
    """`atomic_text_writer`, except for a stream (`is_stream`), which is written as it goes: an open
    descriptor through a copy of it (so `>> log` appends and `| head` reads along), a FIFO or a
    character device opened for writing without truncating anything."""
    fd = descriptor_of(path)
    if fd is None and not is_stream(path):
        with atomic_text_writer(path, encoding) as handle:
            yield handle
        return
    raw = os.dup(fd) if fd is not None else os.open(path, os.O_WRONLY)
    with open(raw, "w", newline="", encoding=encoding, closefd=True) as handle:
        yield handle


@contextlib.contextmanager
def atomic_text_writer(path: str | Path, encoding: str = "utf-8") -> Iterator[TextIO]:
    """Open a text file for writing that appears at `path` only when fully written."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding=encoding) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
