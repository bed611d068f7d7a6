"""Search latency: Annoy build time, index size, p50/p99 query latency and recall@10 vs exact NumPy.

    python benchmarks/search_bench.py [--sizes 10000,100000] [--dims 1280,512] [--trees 10,30,60]
                                      [--search-k 500,1000,2000,5000,10000] [--noise 0.3]
                                      [--end-to-end 100000] [--write-docs]

Vectors: the real efficientnet_lite0 vectors of a catalog (`--from-db`, default the quality
benchmark's 4,000 photos, else the demo catalog), tiled to the wanted size with Gaussian noise
(`--noise` x each dimension's spread); 512-d vectors are the same real vectors projected on their
first 512 principal components. Queries are fresh noisy copies (not in the index), like an
uploaded photo. Every run adds its rows to data/bench/search_bench.json; `--write-docs` renders
them all into the "search" section of docs/benchmarks.md. Sizes are flags: 1M x 1280-d needs
about 16 GB of memory and a long build, so run it only where that fits.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from core.search.index import DEFAULT_TREES, SEARCH_K_PER_RESULT, make_annoy
from core.search.space import open_space

from common import ROOT, machine, write_section

K = 10
RESULTS = ROOT / "data" / "bench" / "search_bench.json"
SOURCES = (ROOT / "data" / "bench" / "quality.db", ROOT / "data" / "demo.db")


def real_vectors(source: Path | None) -> tuple[np.ndarray, str]:
    for path in [source] if source else SOURCES:
        if path and path.exists():
            con = sqlite3.connect(path)
            rows = con.execute("SELECT vector FROM embeddings WHERE method = 'efficientnet_lite0'").fetchall()
            if rows:
                return np.vstack(
                    [np.frombuffer(r[0], "<f4") for r in rows]
                ), f"{len(rows):,} real vectors of {path.name}"
    raise SystemExit("no efficientnet_lite0 vectors found: run `python -m core demo` or benchmarks/quality.py first")


def project(base: np.ndarray, dim: int) -> np.ndarray:
    if dim >= base.shape[1]:
        return base
    _, _, vt = np.linalg.svd(base - base.mean(axis=0), full_matrices=False)
    return base @ vt[:dim].T


def tiled(base: np.ndarray, n: int, noise: float, seed: int) -> np.ndarray:
    """n unit vectors: random picks of the real vectors plus per-dimension Gaussian noise."""
    rng = np.random.default_rng(seed)
    spread = base.std(axis=0).astype(np.float32) * noise
    out = np.empty((n, base.shape[1]), np.float32)
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        block = base[rng.integers(0, len(base), m)] + rng.standard_normal((m, base.shape[1]), np.float32) * spread
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def exact_truth(matrix: np.ndarray, queries: np.ndarray) -> np.ndarray:
    sims = queries @ matrix.T
    top = np.argpartition(-sims, K - 1, axis=1)[:, :K]
    return top


def brute_force_latency(matrix: np.ndarray, queries: np.ndarray) -> tuple[float, float]:
    times = []
    for q in queries[:50]:
        start = time.perf_counter()
        sims = matrix @ q
        top = np.argpartition(-sims, K - 1)[:K]
        top[np.argsort(-sims[top])]
        times.append(time.perf_counter() - start)
    return percentiles(times)


def run_case(
    matrix: np.ndarray, queries: np.ndarray, trees_list: list[int], search_ks: list[int], folder: Path
) -> list[dict]:
    truth = exact_truth(matrix, queries)
    bf50, bf99 = brute_force_latency(matrix, queries)
    rows = []
    for trees in trees_list:
        start = time.perf_counter()
        annoy = make_annoy(matrix, trees)
        path = folder / f"bench-{trees}.ann"
        annoy.save(str(path))
        build = time.perf_counter() - start
        annoy.unload()
        annoy = AnnoyIndex(matrix.shape[1], "angular")
        annoy.load(str(path))  # memory-mapped, as the app serves it
        for search_k in search_ks:
            times, recall = [], []
            for q, true in zip(queries, truth):
                start = time.perf_counter()
                found = annoy.get_nns_by_vector(q.tolist(), K, search_k=search_k)
                times.append(time.perf_counter() - start)
                recall.append(len(set(found) & set(true.tolist())) / K)
            p50, p99 = percentiles(times)
            rows.append(
                {
                    "trees": trees,
                    "search_k": search_k,
                    "build_s": round(build, 1),
                    "index_mb": round(path.stat().st_size / 2**20, 1),
                    "p50_ms": round(p50, 3),
                    "p99_ms": round(p99, 3),
                    "recall": round(float(np.mean(recall)), 4),
                    "numpy_p50_ms": round(bf50, 2),
                    "numpy_p99_ms": round(bf99, 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        annoy.unload()
        path.unlink()
    return rows


def end_to_end(base: np.ndarray, n: int, noise: float, queries: int = 200) -> dict:
    """`core.search.queries.search` by item id on a real catalog file of n items (SQL, index checks, display)."""
    from core.catalog.db import open_catalog
    from core.catalog.vectors import store
    from core.search.queries import search

    matrix = tiled(base, n, noise, seed=3)
    with tempfile.TemporaryDirectory(dir=ROOT / "data" / "bench") as tmp:
        db = open_catalog(Path(tmp) / "catalog.db")
        ids = [f"E{n:07d}" for n in range(n)]
        with db.conn:
            db.conn.executemany(
                "INSERT INTO items (id, source, title, category) VALUES (?, 'bench', ?, ?)",
                [(i, f"Item {i}", f"cat{j % 20}") for j, i in enumerate(ids)],
            )
        store(db, "efficientnet_lite0", "bench", ((i, v, "x") for i, v in zip(ids, matrix)))
        start = time.perf_counter()
        open_space(db, "efficientnet_lite0").build_index(progress=False)
        build = time.perf_counter() - start
        search(open_space(db, "efficientnet_lite0"), item_id=ids[0], k=K)  # first load: fingerprint check + mmap
        rng = np.random.default_rng(4)
        times, filtered = [], []
        for j in rng.integers(0, n, queries):
            start = time.perf_counter()
            search(open_space(db, "efficientnet_lite0"), item_id=ids[j], k=K)
            times.append(time.perf_counter() - start)
        members = np.arange(3, n, 20)  # category cat3: 1 item in 20
        unit = matrix[members]
        recall = []
        for j in rng.integers(0, n, 50):
            start = time.perf_counter()
            hits = search(
                open_space(db, "efficientnet_lite0"), item_id=ids[j], k=K, filters={"category": ["cat3"]}
            ).results
            filtered.append(time.perf_counter() - start)
            sims = unit @ matrix[j]
            sims[members == j] = -np.inf
            truth = {ids[members[i]] for i in np.argsort(-sims)[:K]}
            recall.append(len(truth & {h.item_id for h in hits}) / K)
        db.conn.close()
    p50, p99 = percentiles(times)
    f50, f99 = percentiles(filtered)
    return {
        "items": n,
        "dim": base.shape[1],
        "build_s": round(build, 1),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "filtered_p50_ms": round(f50, 2),
        "filtered_p99_ms": round(f99, 2),
        "filtered_recall": round(float(np.mean(recall)), 3),
    }


def render(results: dict) -> str:
    default_k = SEARCH_K_PER_RESULT * K
    lines = [
        "## Search latency: Annoy vs exact NumPy",
        "",
        f"`python benchmarks/search_bench.py` on {results.get('machine', machine())}. {results.get('source', '')}",
        "tiled to each size with Gaussian noise (noise x each dimension's spread; 512-d = the same real",
        "vectors projected on their first 512 principal components); 200 fresh noisy queries per case",
        "(not in the index), k = 10, single-threaded queries against the memory-mapped index file.",
        "Recall@10 is against exact cosine top-10. The machine was shared with other helpers' test",
        "runs and benchmarks while this ran: treat latencies as upper bounds (p99 especially).",
        "",
        f"### Product defaults ({DEFAULT_TREES} trees, search_k = {SEARCH_K_PER_RESULT} x k = {default_k})",
        "",
        "| vectors | dim | noise | build s | index MB | p50 ms | p99 ms | recall@10 | NumPy p50 ms | NumPy p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cases = sorted(results["cases"], key=lambda c: (c["noise"], -c["dim"], c["items"]))
    for case in cases:
        for r in case["rows"]:
            if r["trees"] == DEFAULT_TREES and r["search_k"] == default_k:
                lines.append(
                    f"| {case['items']:,} | {case['dim']} | {case['noise']} | {r['build_s']} | {r['index_mb']} | "
                    f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['recall']:.3f} | {r['numpy_p50_ms']:.1f} | "
                    f"{r['numpy_p99_ms']:.1f} |"
                )
    lines += ["", "### Trade-off: trees x search_k", ""]
    for case in cases:
        lines += [
            f"**{case['items']:,} x {case['dim']}-d, noise {case['noise']}** "
            "(cells: p50 ms / recall@10; build s and index MB per tree count)",
            "",
        ]
        trees = sorted({r["trees"] for r in case["rows"]})
        ks = sorted({r["search_k"] for r in case["rows"]})
        lines.append("| trees | build s | MB | " + " | ".join(f"search_k {k:,}" for k in ks) + " |")
        lines.append("|---:|---:|---:|" + "---:|" * len(ks))
        for t in trees:
            cells = {r["search_k"]: r for r in case["rows"] if r["trees"] == t}
            first = next(iter(cells.values()))
            lines.append(
                f"| {t} | {first['build_s']} | {first['index_mb']} | "
                + " | ".join(f"{cells[k]['p50_ms']:.2f} / {cells[k]['recall']:.3f}" if k in cells else "-" for k in ks)
                + " |"
            )
        lines.append("")
    if results.get("end_to_end"):
        lines += [
            "### End to end: `core.search.queries.search` by item id on a catalog file",
            "",
            "Includes the staleness check, SQL for the query vector and filters, and the display fields.",
            "",
            "| items | dim | index build s | p50 ms | p99 ms | filtered (1 of 20 categories) p50 ms | p99 ms | filtered recall@10 |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for e in results["end_to_end"]:
            lines.append(
                f"| {e['items']:,} | {e['dim']} | {e['build_s']} | {e['p50_ms']} | {e['p99_ms']} | "
                f"{e['filtered_p50_ms']} | {e['filtered_p99_ms']} | {e.get('filtered_recall', '-')} |"
            )
        lines.append("")
    lines += results.get("notes", [])
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000,100000", help="comma-separated vector counts, e.g. 10000,100000,1000000"
    )
    parser.add_argument("--dims", default="1280,512")
    parser.add_argument("--trees", default=f"10,{DEFAULT_TREES},60")
    parser.add_argument("--search-k", default=f"500,1000,{SEARCH_K_PER_RESULT * K},5000,10000")
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--from-db", type=Path, help="catalog whose efficientnet_lite0 vectors to tile")
    parser.add_argument("--end-to-end", type=int, help="also time core.search.queries.search on a catalog of N items")
    parser.add_argument("--write-docs", action="store_true", help="render every stored result into docs/benchmarks.md")
    parser.add_argument("--only-docs", action="store_true", help="just render stored results")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"cases": [], "end_to_end": []}
    if not args.only_docs:
        base, source = real_vectors(args.from_db)
        results["source"], results["machine"] = f"Base vectors: {source} (efficientnet_lite0, 1280-d),", machine()
        trees = [int(t) for t in args.trees.split(",")]
        search_ks = [int(k) for k in args.search_k.split(",")]
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        for dim in (int(d) for d in args.dims.split(",") if d):
            projected = project(base, dim)
            for n in (int(s) for s in args.sizes.split(",") if s):
                need = n * dim * 4 * 3
                if need > os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"):
                    print(f"skipping {n:,} x {dim}: needs ~{need / 2**30:.0f} GiB of free memory")
                    continue
                print(f"== {n:,} x {dim}-d, noise {args.noise}", flush=True)
                matrix = tiled(projected, n, args.noise, seed=1)
                queries = tiled(projected, args.queries, args.noise, seed=2)
                with tempfile.TemporaryDirectory() as tmp:
                    rows = run_case(matrix, queries, trees, search_ks, Path(tmp))
                results["cases"] = [
                    c for c in results["cases"] if (c["items"], c["dim"], c["noise"]) != (n, dim, args.noise)
                ]
                results["cases"].append({"items": n, "dim": dim, "noise": args.noise, "rows": rows})
                RESULTS.write_text(json.dumps(results, indent=1))
                del matrix
        if args.end_to_end:
            row = end_to_end(base, args.end_to_end, args.noise)
            print(json.dumps(row))
            results["end_to_end"] = [e for e in results["end_to_end"] if e["items"] != row["items"]] + [row]
            RESULTS.write_text(json.dumps(results, indent=1))
    if args.write_docs or args.only_docs:
        write_section("search", render(results))
        print(render(results))


if __name__ == "__main__":
    main()
