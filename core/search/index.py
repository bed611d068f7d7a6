"""Annoy indices: build from the catalog's vectors, write atomically, load memory-mapped, never stale.

Each method's index is three files in the catalog's own `indices/` folder (`data/shop.db` -> `data/shop/indices/`): `<method>.ann` (Annoy),
`<method>.ids` (a JSON list: the item id at each Annoy position) and `<method>.json` (the manifest: method, versions,
metric, dimension, trees, item count, vector checksum, vector generation, build time, file
sizes and fingerprints). Every file is written to a temporary name and renamed, manifest last;
the catalog's `indices` table records which build it expects.

Before an index is served, `problem()` checks (cheaply, on every query) that the manifest is
readable, that it was built from the version of the vectors searched, that the files are this
catalog's latest build and that they have the recorded sizes. On the first load in a process the
file fingerprints are checked too. Anything wrong means a rebuild, never a silently wrong answer.
Vectors changed since the build (the per-method generation counter, moved by triggers on every
change) do not make it stale: they are searched exactly beside it (core/search/delta.py) until the
index is rebuilt (compacted), in the background, the old build serving meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from annoy import AnnoyIndex
from tqdm import tqdm

from core.catalog.db import Catalog
from core.catalog.vectors import (
    checksum,
    generation,
    load_matrix,
    methods_with_vectors,
    missing_vectors,
    stored_versions,
)
from core.files.atomic import atomic_path
from core.priority import giving_way
from core.search import caches

log = logging.getLogger(__name__)

DEFAULT_TREES = 30
MAX_TREES = 1_000  # more only costs time and disk; `index --trees` takes the same bound
SEARCH_K_PER_RESULT = 200  # Annoy search_k = n * this (2,000 nodes for k=10): see docs/benchmarks.md
FULL_DIGEST_LIMIT = 256 * 2**20  # files up to this size are fingerprinted whole; larger ones by samples
_SAMPLES, _SAMPLE_BYTES = 64, 1 << 16
AnnoyMetric = Literal["angular", "euclidean", "manhattan", "hamming", "dot"]  # what AnnoyIndex takes


@dataclass
class IndexInfo:
    """The manifest of a built index."""

    method: str
    versions: list[str]
    metric: str
    dim: int
    trees: int
    items: int
    checksum: str
    generation: int
    build_seconds: float
    ann_bytes: int
    built_at: str
    annoy_metric: AnnoyMetric = "angular"
    ann_digest: str = ""
    ids_digest: str = ""
    ann_stamp: str = ""  # the files' inode and modification time: a file replaced since is seen at once
    ids_stamp: str = ""


class IndexUnavailable(RuntimeError):
    """An index that cannot be built or served, with the remedy."""


@dataclass
class LoadedIndex:
    """A memory-mapped Annoy index with its id list; safe to share between threads."""

    info: IndexInfo
    ids: list[str]
    annoy: AnnoyIndex
    position: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.position = {item_id: n for n, item_id in enumerate(self.ids)}

    def search_k(self, n: int) -> int:
        return max(n * SEARCH_K_PER_RESULT, n * self.info.trees)

    def nearest(self, vector: np.ndarray, n: int, search_k: int | None = None) -> tuple[list[int], list[float]]:
        """Positions and cosine similarities of the n nearest items."""
        found, distances = self.annoy.get_nns_by_vector(
            np.asarray(vector, dtype=np.float32).tolist(),
            n,
            search_k=search_k or self.search_k(n),
            include_distances=True,
        )
        return found, [1.0 - d * d / 2.0 for d in distances]  # Annoy's angular distance is sqrt(2 - 2 cos)

    def vector(self, position: int) -> np.ndarray:
        """The stored (raw) vector at a position, read from the memory-mapped file."""
        return np.asarray(self.annoy.get_item_vector(position), dtype=np.float32)


def _paths(db: Catalog, method: str) -> tuple[Path, Path, Path]:
    base = db.index_dir / method
    return base.with_suffix(".ann"), base.with_suffix(".ids"), base.with_suffix(".json")


def stamp(path: Path) -> str:
    """A file's inode and modification time (a rename keeps both): which write a file is."""
    found = path.stat()
    return f"{found.st_ino}:{found.st_mtime_ns}"


def file_digest(path: Path) -> str:
    """BLAKE2b of a file: whole up to FULL_DIGEST_LIMIT, else its size, head, tail and 64 spread samples."""
    digest = hashlib.blake2b(digest_size=20)
    size = path.stat().st_size
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        if size <= FULL_DIGEST_LIMIT:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        else:
            for n in range(_SAMPLES + 1):
                handle.seek(min(size - _SAMPLE_BYTES, n * (size - _SAMPLE_BYTES) // _SAMPLES))
                digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()


def make_annoy(matrix: np.ndarray, trees: int, progress: bool = False, desc: str = "index") -> AnnoyIndex:
    """An in-memory angular Annoy index over the rows of `matrix` (position = row number): every
    metric's vectors have unit length, so angular order is cosine order (core/methods/distances.py)."""
    annoy = AnnoyIndex(int(matrix.shape[1]), "angular")
    for n in tqdm(range(len(matrix)), desc=f"{desc}: adding", unit=" vectors", disable=not progress, mininterval=1.0):
        annoy.add_item(n, matrix[n].tolist())
    annoy.build(trees, n_jobs=-1)
    return annoy


def build_index(
    db: Catalog, method: str, metric: str, trees: int | None = None, progress: bool = True, version: str | None = None
) -> IndexInfo:
    """Build (or rebuild) a method's Annoy index from its stored vectors; return its manifest.
    `metric`: the method's (recorded in the manifest). A method's space calls this (`MethodSpace.build_index`).
    The build gives way to searches: it runs at LOOKALIKE_BUILD_NICE (core/priority.py)."""
    trees = DEFAULT_TREES if trees is None else trees
    if trees < 1:
        raise ValueError("trees must be at least 1")
    if trees > MAX_TREES:
        raise ValueError(f"trees must be at most {MAX_TREES:,}, got {trees}")
    return giving_way(lambda: _build(db, method, metric, trees, progress, version))


def _build(db: Catalog, method: str, metric: str, trees: int, progress: bool, version: str | None) -> IndexInfo:
    gen = generation(db, method)
    ids, matrix = load_matrix(db, method, version)  # one version's vectors only, when given
    if not ids:
        raise IndexUnavailable(missing_vectors(method))
    versions = [version] if version is not None else sorted(stored_versions(db, method))
    start = time.perf_counter()
    annoy = make_annoy(matrix, trees, progress, desc=method)
    ann_path, ids_path, manifest_path = _paths(db, method)
    with atomic_path(ann_path) as tmp:
        annoy.save(str(tmp))
        annoy.unload()
        size, ann_digest, ann_stamp = tmp.stat().st_size, file_digest(tmp), stamp(tmp)
    with atomic_path(ids_path) as tmp:
        tmp.write_text(json.dumps(ids, ensure_ascii=True), encoding="ascii")  # any id round-trips
        ids_digest, ids_stamp = file_digest(tmp), stamp(tmp)
    info = IndexInfo(
        method=method,
        versions=versions,
        metric=metric,
        dim=int(matrix.shape[1]),
        trees=trees,
        items=len(ids),
        checksum=checksum(ids, matrix),
        generation=gen,
        build_seconds=round(time.perf_counter() - start, 3),
        ann_bytes=size,
        built_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        annoy_metric="angular",
        ann_digest=ann_digest,
        ids_digest=ids_digest,
        ann_stamp=ann_stamp,
        ids_stamp=ids_stamp,
    )
    manifest = json.dumps(asdict(info), indent=2)
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(manifest, encoding="utf-8")
    with db.conn:
        db.conn.execute(
            "INSERT INTO indices (method, path, manifest) VALUES (?, ?, ?) ON CONFLICT (method) "
            "DO UPDATE SET path = excluded.path, manifest = excluded.manifest, built_at = datetime('now')",
            (method, str(ann_path), manifest),
        )
    log.info("built %s index: %d items, %d trees, %.1fs", method, len(ids), trees, info.build_seconds)
    return info


def read_manifest(db: Catalog, method: str) -> IndexInfo | None:
    """The manifest beside the index files (None when missing or unreadable)."""
    try:
        return IndexInfo(**json.loads(_paths(db, method)[2].read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _expected_build(db: Catalog, method: str) -> tuple[str, str] | None:
    """(checksum, built_at) of the build this catalog last recorded for the method."""
    row = db.execute("SELECT manifest FROM indices WHERE method = ?", (method,)).fetchone()
    try:
        recorded = json.loads(row[0]) if row else None
        return (recorded["checksum"], recorded["built_at"]) if recorded else None
    except (ValueError, KeyError, TypeError):
        return None


def problem(db: Catalog, method: str, version: str | None = None) -> str | None:
    """Why a method's index cannot be served as it is (None when it is fresh and whole); with
    `version`, an index of another version's vectors is stale too."""
    info = read_manifest(db, method)
    ann_path, ids_path, _ = _paths(db, method)
    if info is None:
        return "no index built yet"
    if version is not None and info.versions != [version]:
        return "the method changed since the index was built"
    if _expected_build(db, method) != (info.checksum, info.built_at):
        return "index files are not this catalog's latest build"
    if not ann_path.exists() or ann_path.stat().st_size != info.ann_bytes:
        return "index file missing or damaged"
    if not ids_path.exists():
        return "index id list missing"
    if (info.ann_stamp and stamp(ann_path) != info.ann_stamp) or (info.ids_stamp and stamp(ids_path) != info.ids_stamp):
        return "index files replaced since its manifest was written (a build under way, or one that died)"
    return None


def _open(db: Catalog, method: str, info: IndexInfo) -> LoadedIndex:
    """Verify the files against the manifest and memory-map the index; IndexUnavailable if they differ."""
    ann_path, ids_path, _ = _paths(db, method)
    try:
        if info.ann_digest and file_digest(ann_path) != info.ann_digest:
            raise IndexUnavailable("index file damaged (fingerprint differs)")
        if info.ids_digest and file_digest(ids_path) != info.ids_digest:
            raise IndexUnavailable("index id list damaged (fingerprint differs)")
        ids = json.loads(ids_path.read_text(encoding="ascii"))
        annoy = AnnoyIndex(info.dim, info.annoy_metric)
        annoy.load(str(ann_path))  # memory-mapped: pages shared by every session and process
    except (OSError, ValueError) as exc:  # ValueError: an id list of an older layout, or damaged
        raise IndexUnavailable(f"index unreadable ({exc})") from None
    if not isinstance(ids, list) or annoy.get_n_items() != len(ids) or len(ids) != info.items:
        annoy.unload()
        raise IndexUnavailable("index does not match its manifest")
    return LoadedIndex(info, ids, annoy)


def _held_build(db: Catalog, method: str, version: str | None) -> LoadedIndex | None:
    """A build of the method's index this process has loaded, made from the version searched (what
    changed since is searched beside it: core/search/delta.py)."""
    path = str(_paths(db, method)[0])
    return next((v for k, v in caches.INDICES.items() if k[0] == path and version in (None, *v.info.versions)), None)


def hold(db: Catalog, method: str, loaded: LoadedIndex) -> None:
    """Make a build just opened the one this process serves (older builds go when no search holds them)."""
    path = str(_paths(db, method)[0])
    with caches.LOCK:
        for old in [k for k in caches.INDICES if k[0] == path]:
            del caches.INDICES[old]
        caches.INDICES[(path, f"{loaded.info.checksum}:{loaded.info.built_at}")] = loaded


def open_built(db: Catalog, method: str, info: IndexInfo) -> LoadedIndex:
    """Open (verify and memory-map) a build just written."""
    return _open(db, method, info)


def _manifest(db: Catalog, method: str) -> IndexInfo:
    """The manifest of an index just checked or built; IndexUnavailable if it went missing meanwhile."""
    info = read_manifest(db, method)
    if info is None:
        raise IndexUnavailable(f"{method} index has no manifest")
    return info


def load_index(
    db: Catalog, method: str, metric: str, rebuild: bool = True, progress: bool = False, version: str | None = None
) -> LoadedIndex:
    """The method's index, memory-mapped and cached per process; rebuilt first if stale or damaged.

    With `rebuild=False`, or on a catalog opened read-only (the API server), an unusable index raises
    IndexUnavailable (with the command to fix it), except while the index is rebuilt (by another
    process, or compacted in the background by this one): the build already loaded is served
    until the new one is complete.
    """
    hint = f"run `python -m core index --method {method}`"
    rebuild = rebuild and not getattr(db, "read_only", False)  # a read-only reader never writes an index
    with caches.key_lock(caches.INDICES, (str(_paths(db, method)[0]),)):  # this file's index only
        reason = problem(db, method, version)
        if reason:
            held = None if rebuild and not compacting(db, method) else _held_build(db, method, version)
            if held is not None:  # a rebuild of the same version is under way: serve the build we hold
                return held
            if not rebuild:
                raise IndexUnavailable(f"{method} index unusable: {reason}; {hint}")
            log.warning("rebuilding %s index: %s", method, reason)
            build_index(db, method, metric, progress=progress, version=version)
        info = _manifest(db, method)
        key = (str(_paths(db, method)[0]), f"{info.checksum}:{info.built_at}")
        if key in caches.INDICES:
            return caches.INDICES[key]
        try:
            loaded = _open(db, method, info)
        except IndexUnavailable as exc:
            if not rebuild:
                raise IndexUnavailable(f"{method} {exc}; {hint}") from None
            log.warning("rebuilding %s index: %s", method, exc)
            build_index(db, method, metric, progress=progress, version=version)
            info = _manifest(db, method)
            key = (key[0], f"{info.checksum}:{info.built_at}")
            loaded = _open(db, method, info)
        for old in [k for k in caches.INDICES if k[0] == key[0]]:
            del caches.INDICES[old]  # older builds: their mappings go when no search holds them
        caches.INDICES[key] = loaded
        return loaded


COMPACTING: set[str] = set()  # index files this process is rebuilding in the background (core/search/delta.py)


def compacting(db: Catalog, method: str) -> bool:
    return str(_paths(db, method)[0]) in COMPACTING


@dataclass(frozen=True)
class IndexState:
    """A method's index: its manifest (None when it has none) and what, if anything, is wrong with it."""

    manifest: IndexInfo | None
    problem: str | None


def index_status(db: Catalog) -> dict[str, IndexState]:
    """Per method with vectors: its manifest (if any) and what, if anything, is wrong with it."""
    return {m: IndexState(read_manifest(db, m), problem(db, m)) for m in sorted(methods_with_vectors(db))}
