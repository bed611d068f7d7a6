"""Annoy indices: build from the catalog's vectors, write atomically, load memory-mapped, never stale.

Each method's index is three files in `<data folder>/indices/`: `<method>.ann` (Annoy, angular),
`<method>.ids` (item id per Annoy position) and `<method>.json` (the manifest: method, version,
metric, dimension, trees, item count, vector checksum, vector generation, build time, file size).
Every file is written to a temporary name and renamed, manifest last. An index whose vectors
changed since the build (the catalog's per-method generation counter moved), or whose files
are missing or damaged, is rebuilt on load, never served.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sqlite_utils
from annoy import AnnoyIndex

from core.atomic import atomic_path
from core.config import data_dir
from core.embed import db_file
from core.vectors import checksum, load_matrix

log = logging.getLogger(__name__)

DEFAULT_TREES = 40
_CACHE: dict[str, tuple[int, "LoadedIndex"]] = {}


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


class IndexUnavailable(RuntimeError):
    """An index that cannot be built (no vectors yet), with the remedy."""


@dataclass
class LoadedIndex:
    info: IndexInfo
    ids: list[str]
    annoy: AnnoyIndex

    def __post_init__(self) -> None:
        self.position = {item_id: n for n, item_id in enumerate(self.ids)}

    def nearest(self, vector: np.ndarray, n: int, search_k: int = -1) -> tuple[list[int], list[float]]:
        """Positions and cosine similarities of the n nearest items to a vector."""
        found, distances = self.annoy.get_nns_by_vector(list(map(float, vector)), n, search_k=search_k,
                                                        include_distances=True)
        return found, [1.0 - d * d / 2.0 for d in distances]

    def nearest_to_item(self, item_id: str, n: int, search_k: int = -1) -> tuple[list[int], list[float]]:
        found, distances = self.annoy.get_nns_by_item(self.position[item_id], n, search_k=search_k,
                                                      include_distances=True)
        return found, [1.0 - d * d / 2.0 for d in distances]


def index_dir(db: sqlite_utils.Database) -> Path:
    path = db_file(db)
    return (data_dir(path) if path else Path.cwd() / "data") / "indices"


def generation(db: sqlite_utils.Database, method: str) -> int:
    row = db.execute("SELECT generation FROM vector_generations WHERE method = ?", (method,)).fetchone()
    return row[0] if row else 0


def _paths(db: sqlite_utils.Database, method: str) -> tuple[Path, Path, Path]:
    base = index_dir(db) / method
    return base.with_suffix(".ann"), base.with_suffix(".ids"), base.with_suffix(".json")


def build_index(db: sqlite_utils.Database, method: str, trees: int | None = None,
                progress: bool = True) -> IndexInfo:
    """Build (or rebuild) a method's Annoy index from its stored vectors."""
    trees = trees or DEFAULT_TREES
    gen = generation(db, method)
    ids, matrix = load_matrix(db, method)
    if not ids:
        raise IndexUnavailable(f"no vectors for {method} yet; run `python -m core embed --method {method}` first")
    versions = sorted(r[0] for r in db.execute("SELECT DISTINCT version FROM embeddings WHERE method = ?", (method,)))
    start = time.perf_counter()
    annoy = AnnoyIndex(matrix.shape[1], "angular")
    for n, row in enumerate(matrix):
        annoy.add_item(n, row)
    annoy.build(trees, n_jobs=-1)
    ann_path, ids_path, manifest_path = _paths(db, method)
    with atomic_path(ann_path) as tmp:
        annoy.save(str(tmp))
        annoy.unload()
        size = tmp.stat().st_size
    with atomic_path(ids_path) as tmp:
        tmp.write_text("\n".join(ids) + "\n", encoding="utf-8")
    from core.extractors import get_spec
    try:
        metric = get_spec(method).metric
    except KeyError:
        metric = "angular"
    info = IndexInfo(method=method, versions=versions, metric=metric, dim=int(matrix.shape[1]), trees=trees,
                     items=len(ids), checksum=checksum(ids, matrix), generation=gen,
                     build_seconds=round(time.perf_counter() - start, 3), ann_bytes=size,
                     built_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(json.dumps(asdict(info), indent=2), encoding="utf-8")
    with db.conn:
        db.conn.execute("INSERT INTO indices (method, path, manifest) VALUES (?, ?, ?) ON CONFLICT (method) "
                        "DO UPDATE SET path = excluded.path, manifest = excluded.manifest, built_at = datetime('now')",
                        (method, str(ann_path), json.dumps(asdict(info))))
    log.info("built %s index: %d items, %d trees, %.1fs", method, len(ids), trees, info.build_seconds)
    return info


def read_manifest(db: sqlite_utils.Database, method: str) -> IndexInfo | None:
    manifest = _paths(db, method)[2]
    try:
        return IndexInfo(**json.loads(manifest.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def problem(db: sqlite_utils.Database, method: str) -> str | None:
    """Why a method's index cannot be served as it is (None when it is fresh and whole)."""
    info = read_manifest(db, method)
    ann_path, ids_path, _ = _paths(db, method)
    if info is None:
        return "no index built yet"
    if info.generation != generation(db, method):
        return "vectors changed since the index was built"
    if not ann_path.exists() or ann_path.stat().st_size != info.ann_bytes:
        return "index file missing or damaged"
    if not ids_path.exists():
        return "index id list missing"
    return None


def load_index(db: sqlite_utils.Database, method: str, rebuild: bool = True, progress: bool = False) -> LoadedIndex:
    """The method's index, memory-mapped and cached per process; rebuilt first if stale or damaged."""
    reason = problem(db, method)
    if reason:
        if not rebuild:
            raise IndexUnavailable(f"{method} index unusable: {reason}; run `python -m core index --method {method}`")
        log.warning("rebuilding %s index: %s", method, reason)
        build_index(db, method, progress=progress)
    ann_path, ids_path, manifest_path = _paths(db, method)
    key = str(ann_path)
    stamp = manifest_path.stat().st_mtime_ns
    cached = _CACHE.get(key)
    if cached and cached[0] == stamp:
        return cached[1]
    info = read_manifest(db, method)
    ids = ids_path.read_text(encoding="utf-8").splitlines()
    annoy = AnnoyIndex(info.dim, "angular")
    try:
        annoy.load(str(ann_path))  # memory-mapped: shared by every session of this process and others
    except OSError as exc:
        if not rebuild:
            raise IndexUnavailable(f"{method} index unreadable ({exc}); run `python -m core index --method {method}`") from None
        log.warning("rebuilding %s index: unreadable (%s)", method, exc)
        build_index(db, method, progress=progress)
        return load_index(db, method, rebuild=False)
    if annoy.get_n_items() != len(ids) or len(ids) != info.items:
        if not rebuild:
            raise IndexUnavailable(f"{method} index does not match its id list; rebuild it")
        build_index(db, method, progress=progress)
        return load_index(db, method, rebuild=False)
    loaded = LoadedIndex(info, ids, annoy)
    _CACHE[key] = (stamp, loaded)
    return loaded


def index_status(db: sqlite_utils.Database) -> dict[str, dict]:
    """Per method with vectors: its manifest (if any) and what, if anything, is wrong with it."""
    methods = [r[0] for r in db.execute("SELECT DISTINCT method FROM embeddings ORDER BY method")]
    return {m: {"manifest": (asdict(i) if (i := read_manifest(db, m)) else None), "problem": problem(db, m)}
            for m in methods}


def clear_cache() -> None:
    """Forget every cached index (tests, or after files were replaced by hand)."""
    _CACHE.clear()


