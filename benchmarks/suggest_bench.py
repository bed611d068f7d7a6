"""Suggested vs random queries to label: how much a learnt method gains per judged query.

    python benchmarks/suggest_bench.py [--db data/bench/suggest.db]

Simulated judges on the 4,000 labelled photos: a query's top 10 among the training items (by the
equal-weight fusion of efficientnet_lite0, color_hist and minilm) is judged relevant when type and
colour both match. For N queries chosen by `labels suggest` (core/curation/suggest.py: the items
whose titles agree with their current look-alikes about as little as the lower quartile) or at
random (five draws, averaged), a method is learnt from those labels alone (`tune --labels`, as
the app does it) and measured on the validation items (half the catalog, never learnt from),
searched among themselves (type+colour P@10). The curve is written to docs/label_curve.png and the
table to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from core.catalog.db import open_catalog
from core.curation import tuning
from core.curation.evaluate import joint_values
from core.curation.labels import judge_by_attributes
from core.curation.suggest import pick
from core.methods.distances import unit
from core.methods.heads import head_vectors, stored_bases, weighted_concat

from common import ROOT, machine, write_section

BASES = ["efficientnet_lite0", "color_hist", "minilm"]
KINDS = ["image", "image", "text"]
SIZES = (25, 50, 100, 200, 400)
DRAWS = 5  # random choices per size, averaged (they spread by up to 0.04 at 50 queries)
VALIDATION = 0.5
PLOT = ROOT / "docs" / "label_curve.png"


def run(db, ids, base, train, queries, classes, validation, name: str) -> tuple[int, float]:
    db.execute("DELETE FROM labels")
    db.conn.commit()
    pairs = judge_by_attributes(db, [ids[n] for n in train], base[train], queries, "category,colour", "sim", "base")
    options = tuning.TuneOptions(validation=VALIDATION)
    tuning.tune(db, name, BASES, [], True, options=options, force=True, progress=False)
    _, matrix, _ = head_vectors(db, name)
    return pairs, tuning.precision_at_k(matrix, classes, validation, validation)


def plot(curves: dict[str, list[tuple[int, float]]], start: float) -> None:
    """A small line chart (PIL): judged pairs -> held-out type+colour P@10, one line per way of choosing,
    named in a legend in the empty top-left corner (a label at a line's end is crossed by the other line)."""
    width, height, pad = 640, 400, 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    xs = [x for points in curves.values() for x, _ in points] + [0]
    ys = [y for points in curves.values() for _, y in points] + [start]
    low, high = min(ys) - 0.01, max(ys) + 0.01

    def at(x: float, y: float) -> tuple[float, float]:
        return pad + x / max(xs) * (width - 2 * pad), height - pad - (y - low) / (high - low) * (height - 2 * pad)

    draw.line([at(0, low), at(max(xs), low)], fill="black")
    draw.line([at(0, low), at(0, high)], fill="black")
    for tick in np.linspace(low, high, 5):
        draw.text((5, at(0, tick)[1] - 6), f"{tick:.2f}", fill="black")
    for tick in sorted({x for x in xs}):
        draw.text((at(tick, low)[0] - 10, height - pad + 8), str(tick), fill="black")
    draw.text((width / 2 - 90, height - 25), "pairs judged (10 per query)", fill="black")
    draw.text((pad, 10), "of the 10 nearest, the share with the same type and colour", fill="black")
    draw.text((pad, 24), "(items the method did not learn from)", fill="black")
    names = {"suggested": "queries the Label page proposes", "random": "queries picked at random"}
    for n, ((label, points), colour) in enumerate(zip(curves.items(), ("#d62728", "#1f77b4"))):
        draw.line([at(0, start)] + [at(x, y) for x, y in points], fill=colour, width=3)
        key_y = pad + 4 + 18 * n
        draw.line([(pad + 12, key_y + 6), (pad + 36, key_y + 6)], fill=colour, width=3)
        draw.text((pad + 42, key_y), names.get(label, label), fill=colour)
    image.save(PLOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "bench" / "suggest.db")
    parser.add_argument("--source", type=Path, default=ROOT / "data" / "bench" / "tune.db")
    args = parser.parse_args()
    if not args.db.exists():
        source = open_catalog(args.source)
        source.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy(args.source, args.db)
    db = open_catalog(args.db)
    ids, parts = stored_bases(db, BASES, KINDS)
    classes = tuning.class_codes(joint_values(db, ids, "category,colour"))
    validation = np.array([n for n, i in enumerate(ids) if tuning.is_validation(i, VALIDATION)])
    train = [n for n, i in enumerate(ids) if not tuning.is_validation(i, VALIDATION)]
    base = weighted_concat([parts[b] for b in BASES], [1 / 3] * 3)
    start = tuning.precision_at_k(unit(base), classes, validation, validation)
    curves: dict[str, list[tuple[int, float]]] = {"suggested": [], "random": []}
    for size in SIZES:
        suggested = [r for r, _ in pick(base[train], [parts["minilm"][train]], size, [False] * len(train))]
        pairs, score = run(db, ids, base, train, suggested, classes, validation, "curve_suggested")
        curves["suggested"].append((pairs, score))
        draws = [
            run(db, ids, base, train, rng.permutation(len(train))[:size].tolist(), classes, validation, "curve_random")
            for rng in (np.random.default_rng(seed) for seed in range(DRAWS))
        ]
        curves["random"].append((draws[0][0], float(np.mean([d[1] for d in draws]))))
        print(size, "suggested", score, "random", [round(d[1], 4) for d in draws], flush=True)
    plot(curves, start)
    rows = [
        f"| {size} | {s[0]} | {s[1]:.3f} | {s[1] - start:+.3f} | {r[0]} | {r[1]:.3f} | {r[1] - start:+.3f} |"
        for size, s, r in zip(SIZES, curves["suggested"], curves["random"])
    ]
    body = "\n".join(
        [
            "## Which queries to label: suggested vs random",
            "",
            f"`python benchmarks/suggest_bench.py` on {machine()}. Simulated judges (same type and colour)",
            f"judge each query's top 10 among the {len(train):,} training items by the equal-weight fusion of",
            "efficientnet_lite0, color_hist and minilm; a method is learnt from those labels alone (`tune --labels`,",
            f"head where it helps) and measured on the {len(validation):,} validation items, searched among "
            f"themselves (type+colour P@10; the equal-weight fusion scores {start:.3f}).",
            "Suggested: `labels suggest -n N` (the items whose titles (`minilm`) agree with their current top 10",
            "about as little as the lower quartile of the catalog: unsure, not odd). "
            f"Random: the mean of {DRAWS} random draws of N training items.",
            "",
            f"| queries | suggested: pairs | P@10 | gain | random: pairs | P@10 (mean of {DRAWS}) | gain |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "![labels to P@10](label_curve.png)",
        ]
    )
    write_section("suggest", body)
    print(body)


if __name__ == "__main__":
    main()
