"""Curation: what one and two rounds of the team's verdicts do to the lists shoppers see.

    python benchmarks/curation_bench.py [--db data/bench/curation.db] [--queries 1000]

Simulated judging on the 4,000 labelled photos: a look-alike is relevant when its type and colour
(articleType and baseColour) are the query's. For each query item, over the whole catalog:

- **model**: the method's top 10;
- **drop-and-fill**: the top 10 judged, the rejected dropped, the places filled with the model's next ranks;
- **steered**: the accepted first, the places filled by the curated list's steered refill
  (core/curation/steering.py over the model's top POOL_FACTOR x k unjudged candidates, as
  core/curation/curated.py does); **2 rounds**: the refill judged too, and steered again.

The photos are split in two halves by a stable hash of their id (`tuning.is_validation(id, 0.5)`):
the steering constants are chosen on queries of one half ("tuning half"); the figures reported are
those of the other half's queries ("unseen half"). The learnt method is tuned
(`core.curation.tuning.tune`, type and colour) in a copy of the catalog where the unseen half's
type and colour are blank, so it learns from the tuning half only.
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
from core.curation.curated import POOL_FACTOR, POOL_MIN
from core.curation.evaluate import joint_values
from core.curation.steering import STEERING, Steering, steered_scores
from core.engines.embed import embed_catalog
from core.methods.distances import unit
from core.methods.heads import HeadError, head_vectors

from common import ROOT, fashion_catalog, machine, write_section

K = 10
METHODS = ("efficientnet_lite0", "hybrid")
LEARNT = "curation_learnt"
LEARNT_BASES = ["efficientnet_lite0", "color_hist"]
GRID = [Steering(t, a) for t, a in ((1.0, 1.0), (2.0, 2.0), (3.0, 2.0), (4.0, 4.0))]


def prepared(path: Path) -> list[str]:
    """The catalog of the 4,000 photos with the methods' vectors (made once, reused)."""
    db = fashion_catalog(path)
    for method in ("efficientnet_lite0", "color_hist", "hybrid"):
        embed_catalog(db, method, batch_size=64, progress=False)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ids = [i for (i,) in db.execute("SELECT id FROM items ORDER BY id")]
    db.conn.close()
    return ids


def learnt_matrix(source: Path, path: Path, ids: list[str]) -> np.ndarray:
    """The learnt method's vectors, tuned where the unseen half's type and colour are blank (cached)."""
    if path.exists():
        try:
            found, matrix, _ = head_vectors(open_catalog(path), LEARNT)
            if found == ids:
                return matrix
        except HeadError:
            pass
    shutil.copy(source, path)
    db = open_catalog(path)
    with db.conn:
        db.conn.executemany(
            "UPDATE items SET category = NULL, colour = NULL WHERE id = ?",
            [(i,) for i in ids if tuning.is_validation(i, 0.5)],
        )
    options = tuning.TuneOptions(validation=0.5)
    tuning.tune(db, LEARNT, LEARNT_BASES, ["category", "colour"], options=options, force=True, progress=False)
    found, matrix, _ = head_vectors(db, LEARNT)
    assert found == ids
    return matrix


class Judging:
    """One method's lists, judged in simulation against the true type and colour."""

    def __init__(self, matrix: np.ndarray, classes: np.ndarray):
        self.matrix = unit(matrix)
        self.classes = classes
        similarity = self.matrix @ self.matrix.T
        np.fill_diagonal(similarity, -np.inf)
        self.order = np.argsort(-similarity, axis=1, kind="stable")[:, :400]
        self.similarity = similarity

    def relevant(self, q: int, rows) -> float:
        return float(np.mean([self.classes[r] == self.classes[q] for r in rows]))

    def steered(self, q: int, judged: dict[int, bool], steering: Steering) -> list[int]:
        """The accepted (best first), then the refill steered from every verdict so far."""
        accepted = sorted((r for r, ok in judged.items() if ok), key=lambda r: -self.similarity[q, r])
        rejected = [r for r, ok in judged.items() if not ok]
        pool = [r for r in self.order[q] if r not in judged][: max(POOL_MIN, POOL_FACTOR * K)]
        m = self.matrix
        scores = steered_scores(m[q], m[pool], m[accepted], m[rejected], steering)
        refill = [pool[n] for n in sorted(range(len(pool)), key=lambda n: -scores[n])]
        return (accepted + refill)[:K]

    def rounds(self, q: int, steering: Steering, two: bool = True) -> dict[str, float]:
        top = list(self.order[q, :K])
        judged = {r: self.classes[r] == self.classes[q] for r in top}
        accepted = [r for r in top if judged[r]]
        rest = [r for r in self.order[q] if r not in judged]
        dropped = (accepted + rest)[:K]
        once = self.steered(q, judged, steering)
        found = {"model": self.relevant(q, top), "drop-and-fill": self.relevant(q, dropped)}
        found["steered, 1 round"] = self.relevant(q, once)
        if two:
            judged_twice = {**judged, **{r: self.classes[r] == self.classes[q] for r in once}}
            dropped_twice = {**judged, **{r: self.classes[r] == self.classes[q] for r in dropped}}
            kept = [r for r in self.order[q] if dropped_twice.get(r, True)][:K]
            found["drop-and-fill, 2 rounds"] = self.relevant(q, kept)
            found["steered, 2 rounds"] = self.relevant(q, self.steered(q, judged_twice, steering))
        return found

    def mean(self, queries, steering: Steering, two: bool = True) -> dict[str, float]:
        rows = [self.rounds(q, steering, two) for q in queries if self.classes[q] >= 0]
        return {name: float(np.mean([r[name] for r in rows])) for name in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "bench" / "curation.db")
    parser.add_argument("--learnt-db", type=Path, default=ROOT / "data" / "bench" / "curation_learnt.db")
    parser.add_argument("--queries", type=int, default=800, help="queries of each half (a seeded sample)")
    args = parser.parse_args()
    started = time.perf_counter()
    ids = prepared(args.db)
    db = open_catalog(args.db, read_only=True)
    classes = tuning.class_codes(joint_values(db, ids, "category,colour"))
    unseen = np.array([tuning.is_validation(i, 0.5) for i in ids])
    rng = np.random.default_rng(0)
    halves = {
        name: np.sort(rng.choice(np.where(mask)[0], min(args.queries, int(mask.sum())), replace=False))
        for name, mask in (("tuning", ~unseen), ("unseen", unseen))
    }
    spaces = {m: Judging(load_matrix(db, m)[1], classes) for m in METHODS}
    spaces[f"learnt ({'+'.join(LEARNT_BASES)})"] = Judging(learnt_matrix(args.db, args.learnt_db, ids), classes)
    print(f"vectors ready in {time.perf_counter() - started:.0f} s", flush=True)

    gains = {}
    for steering in GRID:  # chosen on the tuning half: the mean gain over drop-and-fill across the methods
        found = [j.mean(halves["tuning"][::2], steering, two=False) for j in spaces.values()]
        gains[steering] = float(np.mean([f["steered, 1 round"] - f["drop-and-fill"] for f in found]))
        print(f"tuning half: toward {steering.toward}, away {steering.away}: +{gains[steering]:.3f}", flush=True)
    best = max(gains, key=gains.get)
    lines = []
    for name, judging in spaces.items():
        found = judging.mean(halves["unseen"], best)
        shipped = judging.mean(halves["unseen"], STEERING)
        lines.append(
            f"| {name} | "
            + " | ".join(f"{found[c]:.3f}" for c in found)
            + f" | {found['steered, 1 round'] - found['drop-and-fill']:+.3f} | {shipped['steered, 1 round']:.3f} |"
        )
        print(lines[-1], flush=True)
    body = "\n".join(
        [
            "## Curation: verdicts, drop-and-fill and the steered refill",
            "",
            f"`python benchmarks/curation_bench.py --queries {args.queries}` on {machine()} (AMD EPYC), "
            f"{time.perf_counter() - started:.0f} s.",
            "P@10 (relevant = same type and colour) of the lists of "
            f"{len(halves['unseen'])} query items of the unseen half, over all 4,000 photos; one judging",
            "round judges the model's top 10, the second judges what the first round's list added.",
            f"Steering constants chosen on {len(halves['tuning']) // 2} queries of the other half: toward "
            f"{best.toward:g}, away {best.away:g}",
            f"(the shipped defaults, core/curation/steering.py: toward {STEERING.toward:g}, away {STEERING.away:g};",
            "last column). The learnt method is tuned on the other half only (the unseen half's type and colour",
            "blanked).",
            "",
            "| method | model top 10 | drop-and-fill | steered, 1 round | drop-and-fill, 2 rounds | steered, 2 rounds "
            "| steered - drop-and-fill, 1 round | steered, 1 round, shipped constants |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *lines,
        ]
    )
    write_section("curation", body)
    print(body)


if __name__ == "__main__":
    main()
