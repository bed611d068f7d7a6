"""Learnt methods on items whose category and colour are blank, as a catalog's new listings are.

    python benchmarks/unseen_bench.py [--source data/bench/tune.db]

A copy of the 4,000 labelled photos' catalog has the category and colour of half its items
(chosen by a stable hash, salt "unseen:") blanked; `tune --target category,colour` runs with its
defaults (it holds out a fifth of the items, blank or not, for its own check), so it learns from
the other half only. Its vectors of the blanked items are then scored among themselves against
their real type and colour (P@10): the setting of the learnt look-alikes issue, where 5,583 items
without those fields are scored among themselves.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from core.catalog.db import open_catalog
from core.catalog.vectors import load_matrix
from core.curation import tuning
from core.curation.evaluate import joint_values
from core.engines.embed import embed_catalog
from core.methods.distances import unit, weighted_concat
from core.methods.heads import head_vectors

from common import ROOT, fashion_catalog, machine, write_section

IMAGE = ["efficientnet_lite0", "color_hist"]
DEFAULTS = tuning.TuneOptions()
LEARNT = (  # label, bases, options
    ("image + colour, no votes (`--votes 0`)", IMAGE, tuning.TuneOptions(votes=0)),
    ("image + colour", IMAGE, DEFAULTS),
    ("image + colour + title (minilm)", [*IMAGE, "minilm"], DEFAULTS),
    ("image + colour + words", [*IMAGE, "words"], DEFAULTS),
)


def blank_half(source: Path, path: Path) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """Copy the catalog, blank half the items' category and colour: (ids, real classes, blanked rows)."""
    db = fashion_catalog(source)
    for method in ("efficientnet_lite0", "color_hist", "minilm", "words"):
        embed_catalog(db, method, batch_size=64, progress=False)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    shutil.copy(source, path)
    db = open_catalog(path)
    ids = [i for (i,) in db.execute("SELECT id FROM items ORDER BY id")]
    truth = {
        n: tuning.class_codes(joint_values(db, ids, a))
        for n, a in (("type", "category"), ("type+colour", "category,colour"))
    }
    blank = np.array([tuning.is_validation(i, 0.5, salt="unseen:") for i in ids])
    with db.conn:
        db.conn.executemany(
            "UPDATE items SET category = NULL, colour = NULL WHERE id = ?", [(ids[n],) for n in np.where(blank)[0]]
        )
    db.conn.close()
    return ids, truth, np.where(blank)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / "data" / "bench" / "tune.db")
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "bench" / "unseen.db")
    args = parser.parse_args()
    ids, truth, rows = blank_half(args.source, args.db)
    db = open_catalog(args.db)

    def scored(matrix: np.ndarray) -> str:
        return " | ".join(f"{tuning.precision_at_k(matrix, c, rows, rows):.3f}" for c in truth.values())

    parts = {b: load_matrix(db, b)[1] for b in IMAGE}
    lines = [
        f"| efficientnet_lite0 | untuned default | | {scored(unit(parts[IMAGE[0]]))} |",
        f"| concat 0.7/0.3 | fixed fusion | | {scored(unit(weighted_concat([parts[b] for b in IMAGE], [0.7, 0.3])))} |",
    ]
    for n, (label, bases, options) in enumerate(LEARNT):
        name = f"unseen_{n}"
        started = time.perf_counter()
        result = tuning.tune(db, name, bases, ["category", "colour"], options=options, progress=False)
        seconds = time.perf_counter() - started
        found, matrix, _ = head_vectors(db, name)
        assert found == ids
        weights = ", ".join(f"{s} {w:.2f}" for s, w in result.signal_weights.item.items())
        lines.append(f"| learnt: {label} | {weights}; {result.reason} | {seconds:.1f} | {scored(matrix)} |")
        print(lines[-1], flush=True)
    body = "\n".join(
        [
            "## Learnt methods on items whose category and colour are blank",
            "",
            f"`python benchmarks/unseen_bench.py` on {machine()}. The 4,000 labelled photos' catalog with the",
            f"category and colour of {len(rows):,} items blanked (a stable hash of their id); `tune --target",
            "category,colour` with its defaults (it holds out a fifth of all items for its own check, so it learns",
            f"from {result.items_trained:,} items); P@10 of the blanked items searched among themselves, against their",
            "real type and colour.",
            "",
            "| space | how | train s | type | type+colour |",
            "|---|---|---:|---:|---:|",
            *lines,
        ]
    )
    write_section("unseen", body)
    print(body)


if __name__ == "__main__":
    main()
