"""`sync`: a feed in (core/catalog/sync.py), what changed embedded, the indices compacted when due.

New and changed items are embedded with every method the catalog already has vectors of (or the
ones named), resumable like `embed`; derived methods (hybrid, tuned) after their bases. Searches
find them at once through each index's delta (core/search/delta.py); an index whose delta passed
LOOKALIKE_COMPACT_SHARE is rebuilt here, while other processes (the API) keep serving the old
build and its delta until the new one is complete.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.catalog.db import Catalog
from core.catalog.importers import Columns
from core.catalog.sync import FeedSync, sync_feed
from core.catalog.vectors import changed_since, methods_with_vectors
from core.engines.embed import embed_space
from core.methods import WeightsMissing
from core.search.index import read_manifest
from core.search.space import MethodSpace, SearchError, open_space
from core.settings import settings

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """A sync: the feed's changes, the vectors embedded per method, the indices compacted."""

    feed: FeedSync
    embedded: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # per method: photos that could not be embedded
    not_embedded: dict[str, str] = field(default_factory=dict)  # method -> why it could not run here
    compacted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.feed.ok

    @property
    def problems(self) -> list:
        return self.feed.imported.problems

    def as_dict(self) -> dict:
        return {**asdict(self), "feed": self.feed.as_dict(), "ok": self.ok}

    def summary(self) -> str:
        lines = [self.feed.summary()]
        lines += [f"{m}: {n} embedded, {self.skipped.get(m, 0)} skipped" for m, n in self.embedded.items()]
        lines += [f"{m}: not embedded ({why})" for m, why in self.not_embedded.items()]
        if self.compacted:
            lines.append(f"indices rebuilt (compacted): {', '.join(self.compacted)}")
        return "\n".join(lines)


def ready_spaces(db: Catalog) -> list[MethodSpace]:
    """The spaces of the methods this catalog has vectors of and still knows, derived ones after their bases."""
    found = []
    for name in sorted(methods_with_vectors(db)):
        try:
            found.append(open_space(db, name))
        except SearchError:
            log.info("sync: %s has vectors but is no longer a method; skipped", name)
    return sorted(found, key=lambda space: space.registered.derived)


def sync_catalog(
    db: Catalog,
    feed: str | Path,
    images_dir: str | Path | None = None,
    *,
    columns: Columns | None = None,
    download: bool = False,
    allow_private_hosts: bool = False,
    allow_mass_removal: bool = False,
    max_removal: float | None = None,
    embed: bool = True,
    methods: Sequence[str] | None = None,
    progress: bool = True,
) -> SyncReport:
    """Sync a feed, embed what changed (unless not `embed`) and compact the indices that are due."""
    changes = sync_feed(
        db,
        feed,
        images_dir,
        columns=columns,
        download=download,
        allow_private_hosts=allow_private_hosts,
        allow_mass_removal=allow_mass_removal,
        **({} if max_removal is None else {"max_removal": max_removal}),
        progress=progress,
    )
    report = SyncReport(changes)
    if not changes.ok or not embed:
        return report
    for space in (open_space(db, m) for m in methods) if methods is not None else ready_spaces(db):
        method = space.name
        try:
            done = embed_space(space, progress=progress)
        except WeightsMissing as exc:  # the other methods are still embedded; `embed` does this one later
            report.not_embedded[method] = str(exc)
            continue
        report.embedded[method], report.skipped[method] = done.embedded, done.failed + done.unavailable
        if _due(space):
            space.compact(progress=progress)
            report.compacted.append(method)
    return report


def _due(space: MethodSpace) -> bool:
    """Whether the method's built index has a delta past LOOKALIKE_COMPACT_SHARE of its vectors."""
    built = read_manifest(space.catalog, space.name)
    if built is None:
        return False
    changed = changed_since(space.catalog, space.name, built.generation)
    return len(changed) > settings().compact_share * max(space.vector_count(), 1)
