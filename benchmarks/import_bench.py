"""Import throughput: N Farfetch rows (the real sample replicated with new ids) into a new catalog.

    python benchmarks/import_bench.py [--rows 100000]

Prints a table of rows/s and peak memory (resident set, whole process). Goal: >= 10,000 rows/s.
"""

from __future__ import annotations

import argparse
import csv
import resource
import tempfile
import time
from pathlib import Path

from core.catalog.db import open_catalog
from core.catalog.importers import import_farfetch

from common import ROOT, machine, write_section

SAMPLE = ROOT.parent / "shared" / "data" / "farfetch" / "listings_sample.csv"
FALLBACK = ROOT / "tests" / "fixtures" / "farfetch_40.csv"


def make_rows(source: Path, count: int, dest: Path) -> None:
    """Write `count` rows cycling through the source rows, each with a fresh id."""
    with open(source, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    with open(dest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for n in range(count):
            row = dict(rows[n % len(rows)])
            row["id"] = str(90_000_000 + n)
            writer.writerow(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    source = SAMPLE if SAMPLE.exists() else FALLBACK
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "listings.csv"
        make_rows(source, args.rows, csv_path)
        db = open_catalog(Path(tmp) / "catalog.db")
        results = []
        for run in ("first import", "re-import (upsert)"):
            start = time.perf_counter()
            report = import_farfetch(db, csv_path, Path(tmp) / "images", progress=False)
            seconds = time.perf_counter() - start
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            results.append((run, report.items, seconds, report.items / seconds, peak_mb))
    table = "\n".join(
        ["| run | items | seconds | rows/s | peak RSS MB |", "|---|---:|---:|---:|---:|"]
        + [
            f"| {run} | {items:,} | {seconds:.2f} | {rate:,.0f} | {peak:.0f} |"
            for run, items, seconds, rate, peak in results
        ]
    )
    print(f"source: {source.name}, rows: {args.rows:,}")
    print(table)
    write_section(
        "import",
        "\n".join(
            [
                "## Catalog import",
                "",
                f"`python benchmarks/import_bench.py` on {machine()}: {args.rows:,} Farfetch rows (the real",
                f"`{source.name}` replicated with new ids; no local photos), into a new catalog, then again",
                "(every row an upsert). Goal: >= 10,000 rows/s.",
                "",
                table,
            ]
        ),
    )


if __name__ == "__main__":
    main()
