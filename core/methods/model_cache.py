"""The user-wide cache of converted models (`LOOKALIKE_CACHE`, default `~/.cache/lookalike`).

One folder per entry, named by everything that changes its content (the method, its weights'
digest, the input shape, the converter's versions; see `entry`), shared by every catalog and
process of this user. An entry holds the converted model (`model.xml` + `model.bin`), `entry.json`
(the files' SHA-256 recorded when they were written, and what the caller records beside them, e.g.
reference vectors) and whatever the caller compiles into it. Each entry is:

- made once: a process takes the entry's file lock (`<entry>.lock`), converts into its own
  staging folder `<entry>.staging-<pid>-<random>` and renames that onto the entry; the others
  wait for the lock, then read. A staging folder is never shared, so none is lost;
- verified when read: a file whose digest differs from the recorded one, a missing file or a
  record that cannot be read means the entry is converted anew (once: the new one replaces it).

Nothing here imports a model library. Deleting the whole cache is always safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from core.files.atomic import atomic_path, process_alive
from core.settings import settings

log = logging.getLogger(__name__)

FORMAT = 1  # the layout of an entry: a new one means new entries
FILES = ("model.xml", "model.bin")
LOCK_TIMEOUT_S = 1800  # a conversion of the largest model on a busy 2-core machine takes minutes


def root() -> Path:
    return settings().cache


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Record:
    """What `entry.json` holds: the files' digests and the caller's notes (e.g. reference vectors)."""

    digests: dict[str, str]
    notes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    folder: Path

    @property
    def xml(self) -> Path:
        return self.folder / "model.xml"

    @property
    def record_path(self) -> Path:
        return self.folder / "entry.json"

    @contextmanager
    def locked(self) -> Iterator[Entry]:
        """This entry for this process alone (other processes wait), its parent folder made."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{self.folder}.lock", timeout=LOCK_TIMEOUT_S):
            yield self

    def record(self) -> Record | None:
        """The entry's record when every file matches it; None when anything is missing or differs."""
        try:
            data = json.loads(self.record_path.read_text(encoding="utf-8"))
            record = Record(digests=dict(data["digests"]), notes=dict(data.get("notes", {})))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        for name in FILES:
            try:
                if sha256(self.folder / name) != record.digests.get(name):
                    log.warning("%s in the model cache does not match its digest", self.folder / name)
                    return None
            except OSError:
                return None
        return record

    def save_notes(self, record: Record) -> None:
        """Write `record` (its notes changed) back to entry.json, whole or not at all."""
        with atomic_path(self.record_path) as tmp:
            tmp.write_text(json.dumps({"digests": record.digests, "notes": record.notes}), encoding="utf-8")

    def build(self, write: Callable[[Path], None]) -> Record:
        """Make the entry anew: `write(staging_xml)` saves model.xml + model.bin into a staging
        folder of this process, whose digests are recorded; it then replaces the entry. Call it locked."""
        self.clear_leftovers()
        staging = self.folder.with_name(f"{self.folder.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        staging.mkdir(parents=True)
        try:
            write(staging / "model.xml")
            record = Record(digests={name: sha256(staging / name) for name in FILES})
            (staging / "entry.json").write_text(json.dumps({"digests": record.digests, "notes": {}}), encoding="utf-8")
            if self.folder.exists():  # damaged or stale: moved aside, then removed
                old = self.folder.with_name(f"{self.folder.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
                os.rename(self.folder, old)
                shutil.rmtree(old, ignore_errors=True)
            os.rename(staging, self.folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return record

    def clear_leftovers(self) -> None:
        """Remove staging and replaced folders of this entry whose process died (kill -9, power cut)."""
        for old in self.folder.parent.glob(f"{self.folder.name}.*-*-*"):
            pid = old.name.split(".")[-1].split("-")[1]
            if old.is_dir() and pid.isdigit() and not process_alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)


def entry(*parts: str, **identity: str) -> Entry:
    """The entry named `parts` joined by `-` (readable: method, weights digest, shape), under a
    folder per `identity`'s digest (converter versions and anything else that changes the result)."""
    tag = hashlib.sha256(json.dumps({"format": FORMAT, **identity}, sort_keys=True).encode()).hexdigest()[:12]
    return Entry(root() / "-".join(parts) / tag)
