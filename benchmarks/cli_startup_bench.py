"""Command start-up: wall time of commands that need no model, against `stats`.

    python benchmarks/cli_startup_bench.py [--db data/bench/speed.db] [--repeats 7] [--write]

Each command runs as a user runs it (`python -m core ...`, a fresh process), the commands in
turn, `--repeats` times; the table gives the median and the fastest wall time of each and its
median against `stats --json`. The catalog is the 4,000-photo set with the default's vectors
(embedded first if missing), so `search --item` reads a stored vector and ranks 4,000 items.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, fashion_catalog, machine, write_section

DEFAULT = "efficientnet_lite0"


def wall(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "bench" / "speed.db")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="write the table to docs/benchmarks.md")
    args = parser.parse_args()
    catalog = fashion_catalog(args.db)
    if catalog.execute("SELECT count(*) FROM embeddings WHERE method = ?", (DEFAULT,)).fetchone()[0] < 4000:
        wall(["embed", "--db", str(args.db)])
    item = catalog.execute("SELECT min(item_id) FROM embeddings WHERE method = ?", (DEFAULT,)).fetchone()[0]
    catalog.conn.close()
    db = ["--db", str(args.db)]
    commands = {
        "stats --json": ["stats", "--json", *db],
        f"search --item {item} --json": ["search", "--item", item, "--json", *db],
        "methods --json": ["methods", "--json", *db],
    }
    times: dict[str, list[float]] = {label: [] for label in commands}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        for label, command in commands.items():
            times[label].append(wall(command))
    stats = statistics.median(times["stats --json"])
    lines = [
        f"| `python -m core {label}` | {statistics.median(t):.2f} | {min(t):.2f} | "
        f"{statistics.median(t) / stats:.2f}x |"
        for label, t in times.items()
    ]
    body = "\n".join(
        [
            "## Command start-up",
            "",
            f"`python benchmarks/cli_startup_bench.py --repeats {args.repeats}` on {machine()} (other jobs may",
            f"have been running; load average {load:.1f} before the runs). Wall time of each command as a fresh",
            f"process on the 4,000-item catalog with {DEFAULT} vectors, the commands in turn, {args.repeats} times.",
            "Commands that need no model import neither torch, timm nor transformers (tested).",
            "",
            "| command | median s | fastest s | median vs stats |",
            "|---|---:|---:|---:|",
            *lines,
        ]
    )
    print(body)
    if args.write:
        write_section("cli-startup", body)


if __name__ == "__main__":
    main()
