"""Similar-item export throughput: N items x top-k through the real index and CSV writer.

    python benchmarks/export_bench.py [--items 10000] [-k 10] [--dim 1280]

Vectors are the demo catalog's real efficientnet_lite0 vectors when a catalog with them is given
(--from-db), else unit-norm random vectors; items are synthetic rows. Goal: 10,000 x top-10 <= 20 s.

`--curation`: the curated export against `raw` on the same catalog, with a team's decisions (as
benchmarks/api_load.py --curation makes them: every 10th item's top 10 judged, a third rejected;
200 pins, 100 hidden items, the rule in_stock), alternating runs; written to "export-curation".
Goal: the curated export within 1.5x of the raw one.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from core.catalog.db import open_catalog
from core.catalog.vectors import load_matrix, store
from core.curation.export import export_similar
from core.search.space import open_space

from common import machine, write_section

METHOD = "efficientnet_lite0"


def base_vectors(source_db: Path | None, dim: int) -> np.ndarray:
    if source_db and source_db.exists():
        _, matrix = load_matrix(open_catalog(source_db), METHOD)
        if len(matrix):
            return matrix
    return np.random.default_rng(0).standard_normal((1000, dim)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--from-db", type=Path, help="catalog whose efficientnet_lite0 vectors to tile")
    parser.add_argument("--curation", action="store_true", help="curated against raw, with a team's decisions")
    args = parser.parse_args()
    base = base_vectors(args.from_db, args.dim)
    rng = np.random.default_rng(1)
    picks = base[rng.integers(0, len(base), args.items)]
    vectors = picks + rng.normal(0, picks.std() * 0.3, picks.shape).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        db = open_catalog(Path(tmp) / "catalog.db")
        ids = [f"B{n:07d}" for n in range(args.items)]
        with db.conn:
            db.conn.executemany(
                "INSERT INTO items (id, source, title, category) VALUES (?, 'bench', ?, ?)",
                [(i, f"Bench item {i} — “quoted”, with commas", f"cat{n % 20}") for n, i in enumerate(ids)],
            )
        store(db, METHOD, "bench", ((i, v, "x") for i, v in zip(ids, vectors)))
        start = time.perf_counter()
        open_space(db, METHOD).build_index(progress=False)
        built = time.perf_counter() - start
        if args.curation:
            return compare_curation(db, ids, args, Path(tmp))
        start = time.perf_counter()
        rows = export_similar(open_space(db, METHOD), args.k, Path(tmp) / "similar.csv", progress=False)
        seconds = time.perf_counter() - start
        size = (Path(tmp) / "similar.csv").stat().st_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = "\n".join(
        [
            "| items | k | dim | index build s | export s | rows | rows/s | file MB | peak RSS MB |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {args.items:,} | {args.k} | {vectors.shape[1]} | {built:.1f} | {seconds:.1f} | {rows:,} | "
            f"{rows / seconds:,.0f} | {size / 1e6:.1f} | {peak:.0f} |",
        ]
    )
    print(table)
    source = (
        "real efficientnet_lite0 vectors of the 4,000 photos, tiled with noise" if args.from_db else "random vectors"
    )
    write_section(
        "export",
        "\n".join(
            [
                "## Similar-item export",
                "",
                f"`python benchmarks/export_bench.py --from-db data/bench/quality.db` on {machine()}: {source};",
                "index build, then the CSV export of every item's top-k (exact block search below 20,000",
                "vectors, streamed to an atomic UTF-8 file). Peak RSS is the whole process, the ML libraries",
                "included. Goal: 10,000 items x top-10 in <= 20 s.",
                "",
                table,
            ]
        ),
    )


def compare_curation(db, ids: list[str], args: argparse.Namespace, folder: Path) -> None:
    """Raw and curated exports of the same catalog with a team's decisions, alternating."""
    from api_load import add_curation

    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    add_curation(db.path, ids)
    space = open_space(db, METHOD)
    export_similar(space, args.k, folder / "warm.csv", progress=False, raw=True)
    times: dict[str, list[float]] = {"raw": [], "curated": []}
    for _ in range(2):
        for phase in times:
            start = time.perf_counter()
            rows = export_similar(space, args.k, folder / f"{phase}.csv", progress=False, raw=phase == "raw")
            times[phase].append(time.perf_counter() - start)
            print(f"{phase}: {rows:,} rows in {times[phase][-1]:.1f} s", flush=True)
    best = {phase: min(t) for phase, t in times.items()}
    table = "\n".join(
        [
            "| export | runs s | best s | rows |",
            "|---|---|---:|---:|",
            *(
                f"| {phase} | {', '.join(f'{t:.1f}' for t in runs)} | {best[phase]:.1f} | "
                f"{sum(1 for _ in open(folder / f'{phase}.csv', encoding='utf-8-sig')) - 1:,} |"
                for phase, runs in times.items()
            ),
        ]
    )
    body = "\n".join(
        [
            "## Similar-item export: curated against raw",
            "",
            f"`python benchmarks/export_bench.py --curation` on {machine()}: {args.items:,} items x top-{args.k}, "
            "random vectors, with a team's decisions (every 10th item's top 10 judged, a third rejected; 200 pins,",
            "100 hidden items, the rule `in_stock on`); raw and curated runs alternate (the machine is shared).",
            "",
            table,
            "",
            f"Curated / raw (best runs): **{best['curated'] / best['raw']:.2f}x** (goal: at most 1.5x).",
        ]
    )
    write_section("export-curation", body)
    print(body)


if __name__ == "__main__":
    main()
