"""Retrieval quality of every available method on the 4,000 labelled photos.

    python benchmarks/quality.py [--epochs 10] [--db data/bench/quality.db]

P@1, P@10 and mAP@10 by articleType and baseColour, and P@10 by both at once (every photo a
query, itself excluded), the hybrid colour-weight trade-off, and a table written to
docs/benchmarks.md. The catalog's tuned methods (`python -m core tune`) are rows too.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from core.catalog.vectors import load_matrix
from core.curation.evaluate import evaluate_vectors
from core.engines.embed import embed_catalog
from core.methods import list_methods
from core.methods.hybrid import combine

from common import ROOT, fashion_catalog, machine, write_section

ATTRIBUTES = ("articleType", "baseColour")
BOTH = ",".join(ATTRIBUTES)  # relevant only when type and colour both match


def row(db, method: str, matrix=None, distance: str = "cosine") -> list[float]:
    ids, vectors = matrix or load_matrix(db, method)
    cells = []
    for attribute in ATTRIBUTES:
        at1 = evaluate_vectors(db, method, ids, vectors, attribute, 1, distance=distance)
        at10 = evaluate_vectors(db, method, ids, vectors, attribute, 10, distance=distance)
        cells += [at1.precision_at_k, at10.precision_at_k, at10.map_at_k]
    return cells + [evaluate_vectors(db, method, ids, vectors, BOTH, 10, distance=distance).precision_at_k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "bench" / "quality.db")
    parser.add_argument("--epochs", type=int, default=10, help="autoencoder training epochs")
    args = parser.parse_args()
    db = fashion_catalog(args.db)
    from core.engines.autoencoder_training import train

    start = time.perf_counter()
    train(db, epochs=args.epochs)
    train_minutes = (time.perf_counter() - start) / 60
    rows = []
    for method in list_methods(db):
        if not method.available or method.kind != "image" or method.name == "hybrid":
            continue
        embed_catalog(db, method.name, batch_size=64)
        rows.append((method.name, "cosine", row(db, method.name)))
        if method.metric == "hellinger":
            rows.append((method.name, "chi-square", row(db, method.name, distance="chi2")))
    header = (
        "| method | distance | type P@1 | type P@10 | type mAP@10 | colour P@1 | colour P@10 | colour mAP@10 "
        "| type+colour P@10 |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [f"| {m} | {d} | " + " | ".join(f"{v:.3f}" for v in cells) + " |" for m, d, cells in rows]

    ids_deep, deep = load_matrix(db, "efficientnet_lite0")
    ids_col, colour = load_matrix(db, "color_hist")
    assert ids_deep == ids_col
    trade = []
    for weight in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0):
        weights = {"efficientnet_lite0": 1 - weight, "color_hist": weight}
        fused = (ids_deep, combine({"efficientnet_lite0": deep, "color_hist": colour}, weights))
        cells = row(db, "hybrid", matrix=fused)
        trade.append(f"| {weight:.1f} | " + " | ".join(f"{v:.3f}" for v in cells) + " |")
    body = "\n".join(
        [
            "## Quality: precision on the 4,000 labelled photos",
            "",
            f"`python benchmarks/quality.py` on {machine()}. Every photo is a query; its neighbours",
            "exclude itself; relevant = same `articleType` (type), `baseColour` (colour), or both (type+colour). Random",
            f"ranking gives P@10 ≈ 0.07 by type. The autoencoder was trained here for {args.epochs} epochs",
            f"({train_minutes:.1f} min).",
            "",
            header,
            *lines,
            "",
            "### Hybrid: colour weight trade-off (efficientnet_lite0 + color_hist)",
            "",
            "| colour weight | type P@1 | type P@10 | type mAP@10 | colour P@1 | colour P@10 | colour mAP@10 "
            "| type+colour P@10 |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            *trade,
        ]
    )
    write_section("quality", body)
    print(body)


if __name__ == "__main__":
    main()
