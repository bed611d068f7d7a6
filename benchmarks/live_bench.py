"""A live catalog's index: changes findable without a rebuild, merged search speed and recall, API under sync.

    python benchmarks/live_bench.py [--items 100000] [--changes 1000] [--delta 0.05] [--queries 200]
                                    [--rounds 5] [--clients 16] [--requests 100] [--from-db data/demo.db]
                                    [--no-api] [--write-docs]

A catalog of `--items` items whose efficientnet_lite0 vectors are real vectors tiled with noise
(benchmarks/search_bench.py's `tiled`), its Annoy index built once. Then:

1. `--changes` items added or changed: the index work until they are findable (reading the delta
   vectors and making its index, screened from 1,000 vectors) against a full rebuild (`build_index`).
2. With `--delta` of the catalog changed (half changed vectors, half gone items): search p50, one
   query at a time, of the merged index (its delta screened, core/search/neighbours.py) against a
   freshly built index, the two asked alternately query by query so that the machine's noise hits
   both alike; then the same for the merged index scanning its whole delta; `--rounds` rounds of
   both pairs: the median ratio and its range; and recall@10 against exact search over the live items.
3. A `--clients`-client API load (benchmarks/api_load.py) on `serve` with 2 workers, the catalog first
   put `--delta` behind its index again (as when a compaction is due): after a warm-up, quiet (`--requests`
   per client); while a sync stores `--changes` changed vectors in 10 batches over 5 s and marks items
   gone; while the index is compacted (`index --compact`, a full rebuild in another process). The last
   two loads go on until the work is done and 1 s more, so that they meet the workers taking up its
   result (the new build verified and mapped). Errors, throughput, p50, p99, max and server CPU per request.
Background compaction is switched off for this process and the server (LOOKALIKE_COMPACT_SHARE=1),
so the merged search is timed alone and the compaction is the one `index --compact` of part 3. Prints one table; `--write-docs` renders it into the "live" section of docs/benchmarks.md.
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
from core.search.neighbours import ExactNeighbours, MergedNeighbours
from core.search.space import open_space

from common import ROOT, machine, write_section

METHOD = "efficientnet_lite0"
K = 10
SYNC_BATCHES = 10  # the API phase's sync stores its changes in this many batches,
SYNC_SECONDS = 5.0  # spread over this long
AFTER_S = 1.0  # a loaded phase goes on this long after its work is done


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


def answers(index, queries: np.ndarray) -> list[list[str]]:
    return [[i for i, _ in r] for r in index.neighbours(queries, K)]


def interleaved(a, b, queries: np.ndarray) -> tuple[float, float, float, float]:
    """p50 ms of one query at a time through `a` and through `b`, asked alternately query by query
    (which goes first alternating too), so that the machine's noise hits both alike: wall-clock time,
    then this thread's CPU time (which other processes' turns on the cores do not add to)."""
    wall: tuple[list[float], list[float]] = ([], [])
    cpu: tuple[list[float], list[float]] = ([], [])
    for n, query in enumerate(queries):
        for which in (0, 1) if n % 2 == 0 else (1, 0):
            start, start_cpu = time.perf_counter(), time.thread_time()
            (a, b)[which].neighbours(query, K)
            wall[which].append(time.perf_counter() - start)
            cpu[which].append(time.thread_time() - start_cpu)
    return tuple(float(np.median(t)) * 1000 for t in (*wall, *cpu))


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the merged and fresh search")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--requests", type=int, default=100, help="per client, in the quiet phase (and at least, in the others)"
    )
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
        open_space(db, METHOD).build_index(progress=False)
        fresh = open_space(db, METHOD, backend="annoy").annoy_neighbours()  # the old build stays mapped for merged
        whole = MergedNeighbours(merged.bulk, ExactNeighbours(merged.delta.ids, merged.delta.matrix))
        for index in (merged, whole, fresh):  # a first pass maps their pages in
            index.neighbours(queries, K)
        figures = np.array([[interleaved(m, fresh, queries) for m in (merged, whole)] for _ in range(args.rounds)])
        for column, name in enumerate((type(merged.delta).__name__, "the whole delta scanned (ExactNeighbours)")):
            wall = np.sort(figures[:, column, 0] / figures[:, column, 1])
            cpu = np.median(figures[:, column, 2] / figures[:, column, 3])
            rows.append(
                (
                    f"search p50 at {args.delta:.0%} delta ({len(merged.delta.ids):,} vectors): {name}",
                    f"{np.median(figures[:, column, 0]):.2f} ms merged vs {np.median(figures[:, column, 1]):.2f} ms "
                    f"fresh: **{np.median(wall):.2f}x**, median of {args.rounds} interleaved rounds "
                    f"({wall[0]:.2f}-{wall[-1]:.2f}x); CPU time {cpu:.2f}x",
                )
            )
        merged_found, fresh_found = answers(merged, queries), answers(fresh, queries)
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
        rows += api_phases(path, ids, gone, base, rng, args)
    table = render(rows, args)
    print(table)
    if args.write_docs:
        write_section("live", f"## A live catalog: delta index, compaction, API under sync\n\n{table}\n")


def api_phases(
    path: Path, ids: list[str], gone: list[str], base: np.ndarray, rng: np.random.Generator, args: argparse.Namespace
) -> list[tuple[str, str]]:
    """A `--clients`-client load on `serve` (2 workers) over the catalog `--delta` behind its index (half
    changed vectors, half gone items): warmed up, quiet, then during a sync and during a compaction, each
    of those two loads going on until its work is done and the server has met its result."""
    db = open_catalog(path)
    half = int(
        args.items * args.delta / 2
    )  # the index just built is `--delta` behind again, as when a compaction is due
    gone_now = set(gone)
    picked = rng.choice([n for n, i in enumerate(ids) if i not in gone_now], 2 * half, replace=False)
    change(db, ids, picked[:half], tiled(base, half, 0.3, 7), [ids[p] for p in picked[half:]])
    gone_now |= {ids[p] for p in picked[half:]}
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    port = free_port()
    server = start_server(path, port, 2)
    live_ids = [i for i in ids[: len(ids) // 2] if i not in gone_now][:20_000]  # what clients ask for
    leaving = [i for i in ids[len(ids) // 2 :] if i not in gone_now][: args.changes // 5]  # gone in the sync
    rows = [("index builds (the compaction's)", f"nice {settings.settings().build_nice} (LOOKALIKE_BUILD_NICE)")]

    def row(name: str, figures: dict, extra: str = "") -> tuple[str, str]:
        return (
            f"API, {args.clients} clients, {name}",
            f"{figures['errors']} errors of {figures['requests']:,}, {figures['req_per_s']:.0f} req/s, p50 "
            f"{figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms; server CPU "
            f"{figures['server_cpu_ms']} ms a request{extra}",
        )

    def sync() -> None:  # stored in batches spread over SYNC_SECONDS, as `sync` stores them
        more = rng.choice(len(ids), args.changes, replace=False)
        fresh = tiled(base, args.changes, 0.3, 6)
        for part in range(SYNC_BATCHES):
            time.sleep(SYNC_SECONDS / SYNC_BATCHES if part else 0)
            last = part == SYNC_BATCHES - 1
            change(db, ids, more[part::SYNC_BATCHES], fresh[part::SYNC_BATCHES], leaving if last else [])

    def compaction() -> None:  # a full rebuild in a process of its own, as `index --compact`
        command = [sys.executable, "-m", "core", "index", "--compact", "--method", METHOD, "--db", str(path)]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)

    try:
        load(port, live_ids, args.clients, args.requests // 2, 7, server.pid)  # warm-up: every worker's caches
        rows.append(row("quiet", load(port, live_ids, args.clients, args.requests, 8, server.pid)))
        for name, work in (("during a sync", sync), ("during a compaction", compaction)):
            done, span = threading.Event(), []

            def run(work=work, done=done, span=span) -> None:
                span.append(time.perf_counter())
                try:
                    work()
                finally:
                    span.append(time.perf_counter())
                    time.sleep(AFTER_S)  # the workers meet the work's last change at their next requests
                    done.set()

            worker = threading.Thread(target=run)
            begun = time.perf_counter()
            worker.start()
            figures = load(port, live_ids, args.clients, args.requests, 9, server.pid, until=done)
            worker.join()
            extra = f"; the work ran {span[0] - begun:.1f}-{span[1] - begun:.1f} s, the load 0-{time.perf_counter() - begun:.1f} s"
            rows.append(row(name, figures, extra))
    finally:
        server.terminate()
        server.wait(30)
    return rows


def render(rows: list[tuple[str, str]], args: argparse.Namespace) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    head = f"{cpu}; {machine()}; load average {os.getloadavg()[0]:.1f}\n\n| measure ({args.items:,} items) | result |"
    return "\n".join([head, "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


if __name__ == "__main__":
    main()
