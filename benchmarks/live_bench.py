"""A live catalog's index: changes findable without a rebuild, merged search speed and recall, API under sync.

    python benchmarks/live_bench.py [--items 100000] [--changes 1000] [--delta 0.05] [--clients 16]
                                    [--requests 50] [--from-db data/demo.db] [--write-docs]

A catalog of `--items` items whose efficientnet_lite0 vectors are real vectors tiled with noise
(benchmarks/search_bench.py's `tiled`), its Annoy index built once. Then:

1. `--changes` items added or changed: the index work until they are findable (reading the delta
   and making its exact index) against a full rebuild (`build_index`).
2. With `--delta` of the catalog changed (half changed vectors, half gone items): search p50 through
   the merged index against a freshly built one, and recall@10 of both against exact search over the
   live items.
3. A `--clients`-client API load (benchmarks/api_load.py) while a sync stores changed vectors and marks
   items gone, then while the index is compacted: errors and p99.
Background compaction is switched off for this process (LOOKALIKE_COMPACT_SHARE=1), so the merged
search is timed alone. Prints one table; `--write-docs` renders it into the "live" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from api_load import free_port, load, start_server
from search_bench import real_vectors, tiled
from threadpoolctl import threadpool_limits

from core import settings
from core.catalog.db import open_catalog
from core.catalog.vectors import store
from core.search import caches
from core.search.space import open_space

from common import ROOT, machine, write_section

METHOD = "efficientnet_lite0"
K = 10


def make(path: Path, matrix: np.ndarray) -> list[str]:
    db = open_catalog(path)
    ids = [f"L{n:07d}" for n in range(len(matrix))]
    with db.conn:
        db.conn.executemany("INSERT INTO items (id, source, title) VALUES (?, 'csv', ?)", [(i, i) for i in ids])
    store(db, METHOD, open_space(db, METHOD).version, ((i, v, "x") for i, v in zip(ids, matrix)))
    open_space(db, METHOD).build_index(progress=False)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    return ids


def change(db, ids: list[str], rows: np.ndarray, fresh: np.ndarray, gone: list[str]) -> None:
    store(db, METHOD, open_space(db, METHOD).version, ((ids[r], v, "y") for r, v in zip(rows, fresh)))
    with db.conn:
        db.conn.executemany("UPDATE items SET gone_at = datetime('now') WHERE id = ?", [(i,) for i in gone])


def timed_queries(index, queries: np.ndarray) -> tuple[float, list[list[str]]]:
    """p50 ms of one query at a time, after a first pass that maps the index's pages in; and the answers."""
    index.neighbours(queries, K)
    found, times = [], []
    for q in queries:
        start = time.perf_counter()
        found.append([i for i, _ in index.neighbours(q, K)[0]])
        times.append(time.perf_counter() - start)
    return float(np.percentile(np.array(times) * 1000, 50)), found


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--from-db", type=Path)
    parser.add_argument("--no-api", action="store_true", help="skip the API load (parts 1 and 2 only)")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    os.environ["LOOKALIKE_COMPACT_SHARE"] = "1"
    settings.reload()
    threadpool_limits(1, user_api="blas")  # as `serve` does: small products on a busy machine stay fast
    base, source = real_vectors(args.from_db)
    matrix = tiled(base, args.items, 0.3, 1)
    rng = np.random.default_rng(2)
    rows = [("vectors", f"{source}, tiled with noise (search_bench)")]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "live.db"
        ids = make(path, matrix)
        db = open_catalog(path)
        space = open_space(db, METHOD, backend="annoy")
        space.annoy_neighbours()  # the bulk loaded, as a serving process holds it
        picked = rng.choice(len(ids), args.changes, replace=False)
        change(db, ids, picked, tiled(base, args.changes, 0.3, 3), [])
        start = time.perf_counter()
        merged = open_space(db, METHOD, backend="annoy").annoy_neighbours()
        delta_s = time.perf_counter() - start
        found = sum(merged.neighbours(merged.delta.vectors([ids[p]])[0], 1)[0][0][0] == ids[p] for p in picked[:50])
        start = time.perf_counter()
        open_space(db, METHOD).build_index(progress=False)
        rebuild_s = time.perf_counter() - start
        rows.append(
            (
                f"{args.changes:,} changes findable: index work",
                f"{delta_s:.3f} s (vs full rebuild {rebuild_s:.1f} s); {found}/50 found first",
            )
        )
        # a delta of args.delta: half changed vectors, half gone items
        caches.clear()
        half = int(args.items * args.delta / 2)
        picked = rng.choice(len(ids), 2 * half, replace=False)
        gone = [ids[p] for p in picked[half:]]
        change(db, ids, picked[:half], tiled(base, half, 0.3, 4), gone)
        queries = tiled(base, args.queries, 0.3, 5)
        live = open_space(db, METHOD, backend="exact").exact_index()
        truth = [[i for i, _ in r] for r in live.neighbours(queries, K)]
        merged = open_space(db, METHOD, backend="annoy").annoy_neighbours()
        merged_p50, merged_found = timed_queries(merged, queries)
        open_space(db, METHOD).build_index(progress=False)
        fresh = open_space(db, METHOD, backend="annoy").annoy_neighbours()
        fresh_p50, fresh_found = timed_queries(fresh, queries)
        rows.append(
            (
                f"search p50 at {args.delta:.0%} delta",
                f"{merged_p50:.2f} ms merged vs {fresh_p50:.2f} ms fresh ({merged_p50 / fresh_p50:.2f}x)",
            )
        )
        rows.append(
            (
                "recall@10 vs exact (live items)",
                f"{recall(merged_found, truth):.3f} merged, {recall(fresh_found, truth):.3f} fresh",
            )
        )
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if args.no_api:
            rows.append(("API load", "not run (--no-api)"))
            return print(render(rows, args))
        # API load during a sync (changes stored, items gone) and a compaction
        port = free_port()
        server = start_server(path, port, 2)
        gone_now = set(gone)
        live_ids = [i for i in ids[: len(ids) // 2] if i not in gone_now][:20_000]  # what clients ask for
        leaving = [i for i in ids[len(ids) // 2 :] if i not in gone_now][: args.changes // 5]  # gone in the sync
        try:
            quiet = load(port, live_ids, args.clients, args.requests, 8, server.pid)  # also warms the server up
            rows.append(
                (
                    f"API, {args.clients} clients, quiet",
                    f"{quiet['errors']} errors of {quiet['requests']}, p50 {quiet['p50_ms']} ms, p99 {quiet['p99_ms']} ms",
                )
            )
            for phase in ("sync", "compaction"):

                def work(phase=phase) -> None:
                    if phase == "sync":
                        more = rng.choice(len(ids), args.changes, replace=False)
                        change(db, ids, more, tiled(base, args.changes, 0.3, 6), leaving)
                    else:
                        subprocess.run(
                            [sys.executable, "-m", "core", "index", "--compact", "--method", METHOD, "--db", str(path)],
                            cwd=ROOT,
                            check=True,
                            capture_output=True,
                        )

                worker = threading.Thread(target=work)
                worker.start()
                figures = load(port, live_ids, args.clients, args.requests, 9, server.pid)
                worker.join()
                rows.append(
                    (
                        f"API, {args.clients} clients during a {phase}",
                        f"{figures['errors']} errors of {figures['requests']}, p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms",
                    )
                )
        finally:
            server.terminate()
            server.wait(30)
    table = render(rows, args)
    print(table)
    if args.write_docs:
        write_section("live", f"## A live catalog: delta index, compaction, API under sync\n\n{table}\n")


def render(rows: list[tuple[str, str]], args: argparse.Namespace) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    head = f"{cpu}; {machine()}; load average {os.getloadavg()[0]:.1f}\n\n| measure ({args.items:,} items) | result |"
    return "\n".join([head, "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


if __name__ == "__main__":
    main()
