"""API load: concurrent similar-item requests against a real `python -m core serve`, quiet and while `index` rebuilds.

    python benchmarks/api_load.py [--items 5000] [--clients 16] [--requests 100] [--workers 2] [--write-docs]
    python benchmarks/api_load.py --curation [--write-docs]

Builds a catalog of `--items` items with synthetic unit vectors stored for efficientnet_lite0
(1280-d, as benchmarks/search_bench.py's end-to-end case does), starts the server on a free
loopback port, and has `--clients` threads send `--requests` keep-alive `GET /items/{id}/similar?k=10`
each (random items, with an API key). Then the same again while `python -m core index` rebuilds
the method's index in a loop beside it. Every phase is bounded (the request count) and the
server and rebuild loop are stopped at the end. Prints one JSON line per phase; `--write-docs`
adds the run to data/bench/api_load.json and renders every recorded run into the "api" section of
docs/benchmarks.md (each with its time and the machine's load average: the machine is shared).

`--curation`: the curated list against the model's (`raw=true`) instead, in alternating phases on one
server, over a catalog with a team's decisions: every 10th item has its top 10 judged (a third of them
rejected), 200 pins, 100 hidden items and the rule in_stock (written to the "api-curation" section).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from common import ROOT, machine, write_section

METHOD = "efficientnet_lite0"
DIM = 1280
RESULTS = ROOT / "data" / "bench" / "api_load.json"  # every run's rows, rendered together
KEY = "bench-key"


def make_catalog(path: Path, items: int) -> list[str]:
    """A catalog of `items` items with titles, categories, photo URLs and random unit vectors."""
    from core.catalog.db import open_catalog
    from core.catalog.vectors import store

    db = open_catalog(path)
    ids = [f"A{n:06d}" for n in range(items)]
    with db.conn:
        db.conn.executemany(
            "INSERT INTO items (id, source, title, category) VALUES (?, 'bench', ?, ?)",
            [(i, f"Item {i}", f"cat{n % 20}") for n, i in enumerate(ids)],
        )
    rng = np.random.default_rng(7)
    matrix = rng.standard_normal((items, DIM), np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    store(db, METHOD, "bench", ((i, v, "x") for i, v in zip(ids, matrix)))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "LOOKALIKE_API_KEY": KEY}
    server = subprocess.Popen(
        [sys.executable, "-m", "core", "serve", "--db", str(db), "--port", str(port), "--workers", str(workers)],
        cwd=ROOT,
        env=env,
    )
    for _ in range(600):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("the server did not start")


def add_curation(path: Path, ids: list[str]) -> None:
    """A team's decisions: every 10th item's top 10 judged (every third rejected), pins, hides, in_stock."""
    from core.catalog.db import open_catalog
    from core.curation import decisions
    from core.search.queries import search_many
    from core.search.space import open_space

    db = open_catalog(path)
    rows = []
    for item_id, hits in search_many(open_space(db, METHOD), ids[::10], 10):
        rows += [("item", item_id, h.item_id, METHOD, h.rank, int(h.rank % 3 != 0), "bench") for h in hits]
    with db.conn:
        db.conn.executemany(
            "INSERT INTO labels (query_kind, query_key, candidate_id, method, rank, relevant, labeler) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    rng = np.random.default_rng(3)
    for n in range(200):
        a, b = rng.choice(len(ids), 2, replace=False)
        decisions.pin(db, ids[a], ids[b], int(n % 10) + 1, "bench")
    for n in rng.choice(len(ids), 100, replace=False):
        decisions.hide(db, ids[n], "bench")
    decisions.set_rule(db, "in_stock", "on", "bench")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()


async def client(
    port: int,
    ids: list[str],
    requests: int,
    seed: int,
    out: list,
    query: str = "",
    until: threading.Event | None = None,
) -> None:
    """One keep-alive connection sending `requests` similar-item requests (and then more, until `until`
    is set, when given); (seconds, ok) each."""
    rng = np.random.default_rng(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    while sent < requests or (until is not None and not until.is_set()):
        j = int(rng.integers(0, len(ids)))
        sent += 1
        request = f"GET /items/{ids[j]}/similar?k=10{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n\r\n"
        start = time.perf_counter()
        try:
            writer.write(request.encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            body = await reader.readexactly(length)
            ok = head.startswith(b"HTTP/1.1 200") and len(json.loads(body)["results"]) == 10
        except (TimeoutError, OSError, asyncio.IncompleteReadError, AttributeError, ValueError):
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            ok = False
        out.append((time.perf_counter() - start, ok))
    writer.close()


def cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children (the server's workers)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(root) or fields[1] == str(root):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def load(
    port: int,
    ids: list[str],
    clients: int,
    requests: int,
    seed: int,
    server: int,
    query: str = "",
    until: threading.Event | None = None,
) -> dict:
    """`clients` concurrent clients x `requests` requests (each going on until `until` is set, when
    given): throughput, latency percentiles, errors."""
    results: list[tuple[float, bool]] = []

    async def run_all() -> None:
        await asyncio.gather(*(client(port, ids, requests, seed + n, results, query, until) for n in range(clients)))

    start, cpu = time.perf_counter(), cpu_seconds(server)
    asyncio.run(run_all())
    wall, cpu = time.perf_counter() - start, cpu_seconds(server) - cpu
    ms = np.array([s for s, _ in results]) * 1000
    return {
        "requests": len(results),
        "errors": sum(not ok for _, ok in results),
        "req_per_s": round(len(results) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
        "server_cpu_ms": round(cpu / len(results) * 1000, 2),
        "load_average": round(os.getloadavg()[0], 1),  # runnable processes on the machine: others' work too
    }


def rebuild_loop(db: Path, stop: threading.Event, builds: list) -> None:
    """`python -m core index` again and again until `stop` (each run a real command, as a curator's)."""
    while not stop.is_set():
        done = subprocess.run(
            [sys.executable, "-m", "core", "index", "--method", METHOD, "--db", str(db)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        builds.append(done.returncode)


def render(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "## API load: similar items over HTTP",
        "",
        f"`python benchmarks/api_load.py` on {machine()}: a real `python -m core serve` "
        f"({args.workers} worker process{'es' if args.workers > 1 else ''}, loopback, API key on) over a catalog of "
        f"{args.items:,} items with synthetic {DIM}-d {METHOD} vectors (searched exactly, as every catalog up "
        f"to 20,000 vectors is); {args.clients} concurrent keep-alive clients (one asyncio process on the "
        f"same machine) x {args.requests} `GET /items/{{id}}/similar?k=10` each, random items. "
        '"While index rebuilds": `python -m core index` runs again and again beside the server for the '
        "whole phase (each run a fresh process: start-up, reading the vectors, a 30-tree Annoy build on "
        "both cores).",
        "",
        "| run | phase | requests | errors | req/s | p50 ms | p99 ms | max ms | server CPU ms/request | index builds | load average |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['phase']} | {r['requests']:,} | {r['errors']} | {r['req_per_s']:.0f} | {r['p50_ms']} | "
            f"{r['p99_ms']} | {r['max_ms']} | {r['server_cpu_ms']} | {r.get('index_builds', '-')} | {r['load_average']} |"
        )
    notes = {r["run"]: r["note"] for r in rows if r.get("note")}
    lines += [""] + [f"- {run}: {note}" for run, note in sorted(notes.items())] if notes else []
    met = any(
        all(r["errors"] == 0 and r["p99_ms"] <= 100 and r["req_per_s"] >= 300 for r in rows if r["run"] == run)
        for run in {r["run"] for r in rows}
    )
    lines += [
        "",
        f"Target (issue): 0 errors, p99 <= 100 ms, >= 300 req/s in both phases of a run: **{'met' if met else 'not met in these runs'}**.",
        "The load average (runnable processes; 2 means the 2 cores are busy) says how much of the machine the",
        "server and its clients got: the rebuild loop takes both cores for each Annoy build, so the second phase",
        "shares the machine with it. Similar-item requests are answered on each worker's event loop and",
        "serialised once (about 2.5 ms of server CPU each, a third of it the exact 5,000 x 1,280 product);",
        "photo and text searches run a model and go to the worker's thread pool. Before that (each request",
        "on the thread pool, FastAPI validating the answer again), a quiet run on 29 Nov 2026 23:20 UTC gave",
        "292 and 439 req/s with p99 112 and 121 ms.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="server processes (2: one per core here)")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--curation", action="store_true", help="the curated list against the model's (raw=true)")
    args = parser.parse_args()
    (ROOT / "data" / "bench").mkdir(parents=True, exist_ok=True)
    if args.curation:
        return compare_curation(args)
    with tempfile.TemporaryDirectory(dir=ROOT / "data" / "bench") as tmp:
        db = Path(tmp) / "api.db"
        ids = make_catalog(db, args.items)
        port = free_port()
        server = start_server(db, port, args.workers)
        try:
            load(
                port, ids, args.clients, 10, seed=99, server=server.pid
            )  # warm-up: every worker loads the vectors once
            rows = [
                {"phase": "serving only", **load(port, ids, args.clients, args.requests, seed=1, server=server.pid)}
            ]
            print(json.dumps(rows[-1]), flush=True)
            stop, builds = threading.Event(), []
            rebuilder = threading.Thread(target=rebuild_loop, args=(db, stop, builds))
            rebuilder.start()
            time.sleep(1.0)  # the first rebuild is under way
            row = load(port, ids, args.clients, args.requests, seed=2, server=server.pid)
            stop.set()
            rebuilder.join()
            rows.append({"phase": "while index rebuilds", **row, "index_builds": len(builds)})
            print(json.dumps(rows[-1]), flush=True)
            if any(builds):
                raise SystemExit(f"an index rebuild failed: exit codes {builds}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    runs = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    runs += [{**row, "run": stamp, "workers": args.workers} for row in rows]
    RESULTS.write_text(json.dumps(runs, indent=1))
    if args.write_docs:
        write_section("api", render(runs, args))


def compare_curation(args: argparse.Namespace) -> None:
    """Curated and raw lists from one server, in alternating phases (the machine is shared: its load moves)."""
    with tempfile.TemporaryDirectory(dir=ROOT / "data" / "bench") as tmp:
        db = Path(tmp) / "api.db"
        ids = make_catalog(db, args.items)
        add_curation(db, ids)
        port = free_port()
        server = start_server(db, port, args.workers)
        rows = []
        try:
            for query in ("", "&raw=true"):  # warm-up
                load(port, ids, args.clients, 10, seed=99, server=server.pid, query=query)
            for n in range(3):
                for phase, query in (("curated", ""), ("raw", "&raw=true")):
                    row = load(port, ids, args.clients, args.requests, seed=n, server=server.pid, query=query)
                    rows.append({"phase": phase, **row})
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    p99 = {phase: float(np.median([r["p99_ms"] for r in rows if r["phase"] == phase])) for phase in ("curated", "raw")}
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## API load: curated against raw similar items",
        "",
        f"`python benchmarks/api_load.py --curation` on {machine()}, {stamp}: the server and catalog of the API",
        f"load benchmark ({args.items:,} items, {args.workers} workers, {args.clients} clients x {args.requests} "
        "requests a phase) with a team's decisions: every 10th item's top 10 judged (a third rejected), 200 pins,",
        "100 hidden items and the rule `in_stock on`; curated (the default) and `raw=true` phases alternate.",
        "",
        "| phase | requests | errors | req/s | p50 ms | p99 ms | server CPU ms/request | load average |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['phase']} | {r['requests']:,} | {r['errors']} | {r['req_per_s']:.0f} | {r['p50_ms']} | "
            f"{r['p99_ms']} | {r['server_cpu_ms']} | {r['load_average']} |"
            for r in rows
        ),
        "",
        f"Median p99: curated {p99['curated']:.1f} ms, raw {p99['raw']:.1f} ms: "
        f"**{p99['curated'] / p99['raw']:.2f}x** (goal: at most 1.2x).",
    ]
    if args.write_docs:
        write_section("api-curation", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
