"""Learnt methods vs their bases on the 4,000 labelled photos, measured on items they never saw,
and through them the 21 shopper photos.

    python benchmarks/tune_bench.py [--db data/bench/tune.db] [--queries 400] [--validation 0.5] [--learnt words]

Items are split by a stable hash of their id (by default half training, half validation: with 20%
held out, too few items share a type and colour to fill a top 10; see the "best possible" row).
Every validation item is a query; P@10 by same type (articleType) and same type and colour, with only the
validation items as gallery (held-out only: items the method never saw, searched among
themselves) and with the whole catalog as gallery. The label-learnt methods learn from judged
pairs: `--queries` training items x their top 10 training neighbours by `concat 0.5/0.5`, judged
relevant when type and colour both match. Photo queries: the 21 shopper photos of
../shared/data/query-photos searched through each method against the whole catalog (type P@10,
their judged types in benchmarks/query_photo_types.csv).
"""

from __future__ import annotations

import argparse
import csv
import re
import time
from pathlib import Path

import numpy as np

from core.catalog.items import item_column
from core.curation import tuning
from core.curation.evaluate import joint_values
from core.curation.labels import judge_by_attributes
from core.engines.embed import embed_catalog
from core.methods.distances import unit
from core.methods.heads import head_vectors, stored_bases, weighted_concat
from core.search.queries import search
from core.search.space import open_space

from common import ROOT, SHARED, fashion_catalog, machine, write_section

IMAGE = ["efficientnet_lite0", "color_hist"]
WITH_TEXT = [*IMAGE, "minilm"]
WITH_WORDS = [*IMAGE, "words"]
ALL = [*WITH_TEXT, "words"]
KINDS = {"efficientnet_lite0": "image", "color_hist": "image", "minilm": "text", "words": "text"}
LEARNT = (  # label, bases, targets, from labels
    ("labels: image+colour", IMAGE, [], True),
    ("labels: image+colour+title", WITH_TEXT, [], True),
    ("labels: image+colour+words", WITH_WORDS, [], True),
    ("category,colour: image+colour", IMAGE, ["category", "colour"], False),
    ("category,colour: image+colour+title", WITH_TEXT, ["category", "colour"], False),
    ("category,colour: image+colour+words", WITH_WORDS, ["category", "colour"], False),
    ("labels: image+colour+title+words", ALL, [], True),
    ("category,colour: image+colour+title+words", ALL, ["category", "colour"], False),
)
NOTIONS = {"type": "category", "type+colour": "category,colour"}
LABELER = "tune-bench"
PHOTO_TYPES = Path(__file__).with_name("query_photo_types.csv")


def scores(matrix: np.ndarray, classes: dict, validation: np.ndarray) -> list[float]:
    everything = np.arange(len(matrix))
    return [
        tuning.precision_at_k(matrix, c, validation, gallery)
        for gallery in (validation, everything)
        for c in classes.values()
    ]


def ceilings(classes: dict, validation: np.ndarray, total: int) -> list[float]:
    """The best P@10 any method can score per column: each query's same-class items in the gallery, at most 10."""
    cells = []
    for gallery in (validation, np.arange(total)):
        for c in classes.values():
            counts = np.bincount(c[gallery][c[gallery] >= 0], minlength=c.max() + 1)
            mine = c[validation][c[validation] >= 0]
            cells.append(float(np.mean(np.minimum(tuning.K, counts[mine] - 1) / tuning.K)))
    return cells


def photo_p10(db, method: str) -> float:
    """Mean type P@10 of the shopper photos searched through `method` (whole catalog)."""
    types = {r["photo"]: r["type"] for r in csv.DictReader(PHOTO_TYPES.open(encoding="utf-8"))}
    category = item_column(db, "category")
    found, space = [], open_space(db, method)
    for photo, kind in sorted(types.items()):
        hits = search(space, image=(SHARED / "query-photos" / photo).read_bytes(), k=10).results
        found.append(np.mean([category.get(h.item_id) == kind for h in hits]))
    return float(np.mean(found))


def simulate_labels(db, ids, parts, train, validation, queries: int) -> tuple[int, int]:
    db.execute("DELETE FROM labels WHERE labeler = ?", [LABELER])
    db.conn.commit()
    base = weighted_concat([parts[b] for b in IMAGE], [0.5, 0.5])
    chosen = np.random.default_rng(0).choice(len(train), queries, replace=False).tolist()
    judged = judge_by_attributes(
        db, [ids[n] for n in train], base[train], chosen, "category,colour", LABELER, "concat 0.5/0.5"
    )
    held_back = judge_by_attributes(
        db, ids, base, validation[::8].tolist(), "category,colour", LABELER, "concat 0.5/0.5"
    )  # never trained on: their queries are validation items
    return judged, held_back


def learnt_row(db, label: str, bases: list[str], targets: list[str], labels: bool, classes, validation, order, options):
    name = ("b_" + re.sub(r"[^a-z0-9]+", "_", label.lower().replace("category,colour", "fields")).strip("_"))[:40]
    started = time.perf_counter()
    result = tuning.tune(db, name, bases, targets, labels, force=True, progress=False, options=options)
    seconds = time.perf_counter() - started
    ids, matrix, _ = head_vectors(db, name)
    assert ids == order
    embed_catalog(db, name, progress=False)
    weights = ", ".join(f"{s} {w:.2f}" for s, w in result.signal_weights.item.items())
    notes = f"weights {weights}; head {'kept' if result.head_kept else 'left out'}; {result.reason}"
    print(label, result.as_dict())
    return (label, notes, f"{seconds:.1f}", scores(matrix, classes, validation) + [photo_p10(db, name)]), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "bench" / "tune.db")
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--validation", type=float, default=0.5, help="share of items held out (default 0.5)")
    parser.add_argument("--learnt", help="only the learnt rows whose label holds this text (printed, docs kept)")
    args = parser.parse_args()
    db = fashion_catalog(args.db)
    for method in ALL:
        embed_catalog(db, method, batch_size=64, progress=False)
    ids, parts = stored_bases(db, ALL, [KINDS[b] for b in ALL])
    classes = {n: tuning.class_codes(joint_values(db, ids, a)) for n, a in NOTIONS.items()}
    options = tuning.TuneOptions(validation=args.validation)
    validation = np.array([n for n, i in enumerate(ids) if tuning.is_validation(i, args.validation)])
    train = [n for n, i in enumerate(ids) if not tuning.is_validation(i, args.validation)]
    rows = [
        (
            "best possible",
            "every neighbour relevant, as far as the gallery allows",
            "",
            ceilings(classes, validation, len(ids)) + [0.83],
        )
    ]
    for base in ALL:
        photo = photo_p10(db, base) if KINDS[base] == "image" else float("nan")
        rows.append((base, "frozen base", "", scores(unit(parts[base]), classes, validation) + [photo]))
    fusions = (
        ("concat 0.7/0.3", IMAGE, [0.7, 0.3]),
        ("equal thirds", WITH_TEXT, [1 / 3] * 3),
        ("equal thirds, words", WITH_WORDS, [1 / 3] * 3),
    )
    for label, bases, w in fusions:
        fused = unit(weighted_concat([parts[b] for b in bases], w))
        rows.append((label, "fixed fusion", "", scores(fused, classes, validation) + [float("nan")]))
    judged, held_back = simulate_labels(db, ids, parts, train, validation, args.queries)
    notes = []
    for label, bases, targets, labels in LEARNT:
        if args.learnt and args.learnt not in label:
            continue
        row, result = learnt_row(db, label, bases, targets, labels, classes, validation, ids, options)
        rows.append(row)
        if (held := result.labels) is not None:
            notes.append(
                f"- {label}: held-back labels ({held.pairs} pairs, {held.queries} queries): AUC "
                f"{held.base_auc:.3f} -> {held.tuned_auc:.3f}, judged P@10 "
                f"{held.base_judged_p10:.3f} -> {held.tuned_judged_p10:.3f} (equal-weight bases -> learnt)"
            )
    text = report(rows, notes, ids, validation, judged, held_back, args.queries)
    print(text)
    if not args.learnt:
        write_section("tune", text)


def report(rows, notes, ids, validation, judged, held_back, queries) -> str:
    def cell(v: float) -> str:
        return "–" if np.isnan(v) else f"{v:.3f}"

    header = (
        "| space | how | train s | type (held-out only) | type+colour (held-out only) | type (whole catalog) "
        "| type+colour (whole catalog) | shopper photos type P@10 |\n|---|---|---:|---:|---:|---:|---:|---:|"
    )
    lines = [f"| {s} | {n} | {t} | " + " | ".join(cell(v) for v in cells) + " |" for s, n, t, cells in rows]
    return "\n".join(
        [
            "## Learnt methods: signal weights and heads over efficientnet_lite0, color_hist, minilm and words",
            "",
            f"`python benchmarks/tune_bench.py` on {machine()} (shared with other jobs: seconds are noisy).",
            f"The 4,000 labelled photos are split by a stable hash of their id: {len(ids) - len(validation)} training",
            f"items, {len(validation)} validation items no method learnt from. Every validation item is a query;",
            "P@10 by same type and by same type *and* colour, searching only the validation items (held-out only)",
            "or the whole catalog. Label-learnt methods learn from "
            f"{judged} judged pairs ({queries} training queries x their top 10 training neighbours by",
            "`concat 0.5/0.5`, judged relevant when type and colour match); "
            f"{held_back} more judged pairs of validation queries are held back and only measured (below).",
            "Shopper photos: the 21 photos of `../shared/data/query-photos` searched through each method against",
            "the whole catalog, type P@10 against their judged types (`benchmarks/query_photo_types.csv`: 15",
            "dresses, 4 jackets, 2 bracelets; the catalog has 9 dresses, 58 jackets and no bracelet, so 0.83 is",
            "the best any method can score).",
            "",
            header,
            *lines,
            "",
            *notes,
        ]
    )


if __name__ == "__main__":
    main()
