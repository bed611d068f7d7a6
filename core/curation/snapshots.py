"""Snapshots: a method's top k for every judged query, frozen under a name; the diff of two
snapshots query by query (by nDCG@k under today's verdicts); a check of a method against one."""

from __future__ import annotations

from dataclasses import dataclass

from core.catalog.db import Catalog
from core.curation.grades import Scoring, scoring
from core.curation.measures import score_list
from core.curation.metrics import Figures, GapPair, RankedList, score_lists
from core.curation.verdicts import read_verdicts
from core.search.queries import search_many
from core.search.space import MethodSpace

MEASURES = ("ndcg", "precision", "mrr")


class SnapshotError(ValueError):
    """A snapshot that cannot be taken, found or compared, in one line."""


@dataclass(frozen=True)
class Snapshot:
    """A method's frozen top k per catalog-item query."""

    name: str
    method: str
    version: str | None
    k: int
    created_at: str
    lists: dict[str, tuple[str, ...]]

    def ranked(self) -> list[RankedList]:
        return [RankedList("item", key, "", found) for key, found in sorted(self.lists.items())]


def _judged_items(db: Catalog) -> list[str]:
    return sorted({key for kind, key in read_verdicts(db).per_query() if kind == "item"})


def _current(space: MethodSpace, queries: list[str], k: int) -> dict[str, tuple[str, ...]]:
    return {query: tuple(h.item_id for h in hits) for query, hits in search_many(space, queries, k)}


def take_snapshot(space: MethodSpace, name: str, k: int = 10, replace: bool = False) -> Snapshot:
    """Freeze the method's top k for every judged catalog-item query under `name`."""
    db = space.catalog
    name = (name or "").strip()
    if not name:
        raise SnapshotError("a snapshot needs a name")
    queries = _judged_items(db)
    if not queries:
        raise SnapshotError("no judged catalog-item queries yet: label some results first")
    lists = _current(space, queries, k)
    with db.conn:
        if db.execute("SELECT 1 FROM snapshots WHERE name = ?", (name,)).fetchone():
            if not replace:
                raise SnapshotError(f"a snapshot named {name!r} exists; choose another name or replace it")
            db.conn.execute("DELETE FROM snapshot_results WHERE snapshot = ?", (name,))
            db.conn.execute("DELETE FROM snapshots WHERE name = ?", (name,))
        db.conn.execute(
            "INSERT INTO snapshots (name, method, version, k) VALUES (?, ?, ?, ?)", (name, space.name, space.version, k)
        )
        db.conn.executemany(
            "INSERT INTO snapshot_results (snapshot, query_key, rank, candidate_id) VALUES (?, ?, ?, ?)",
            [(name, q, rank, c) for q, found in lists.items() for rank, c in enumerate(found, start=1)],
        )
    return load_snapshot(db, name)


def snapshot_names(db: Catalog) -> list[str]:
    """Every snapshot, oldest first."""
    return [r[0] for r in db.execute("SELECT name FROM snapshots ORDER BY created_at, name")]


def load_snapshot(db: Catalog, name: str) -> Snapshot:
    row = db.execute("SELECT name, method, version, k, created_at FROM snapshots WHERE name = ?", (name,)).fetchone()
    if row is None:
        known = ", ".join(snapshot_names(db)) or "none yet"
        raise SnapshotError(f"no snapshot named {name!r} (snapshots: {known})")
    lists: dict[str, list[str]] = {}
    for key, candidate in db.execute(
        "SELECT query_key, candidate_id FROM snapshot_results WHERE snapshot = ? ORDER BY query_key, rank", (name,)
    ):
        lists.setdefault(key, []).append(candidate)
    name, method, version, k, created_at = row
    return Snapshot(name, method, version, k, created_at, {key: tuple(found) for key, found in lists.items()})


def snapshot_figures(db: Catalog, snapshot: Snapshot, chosen: Scoring | None = None) -> Figures:
    """A snapshot's measures under today's verdicts."""
    return score_lists(snapshot.ranked(), read_verdicts(db).per_query(), snapshot.k, chosen or scoring())


@dataclass(frozen=True)
class QueryChange:
    """One query's nDCG@k in the first and the second snapshot."""

    query_key: str
    before: float
    after: float

    @property
    def change(self) -> float:
        return self.after - self.before


@dataclass(frozen=True)
class SnapshotDiff:
    """Two snapshots compared: queries that got better or worse, the second's new unjudged results, totals."""

    first: Snapshot
    second: Snapshot
    better: list[QueryChange]
    worse: list[QueryChange]
    unchanged: int
    unjudged: list[GapPair]
    totals: tuple[Figures, Figures]

    def as_dict(self) -> dict:
        def change(c: QueryChange) -> dict:
            return {"query": c.query_key, "before": c.before, "after": c.after, "change": c.change}

        return {
            "first": self.first.name,
            "second": self.second.name,
            "better": [change(c) for c in self.better],
            "worse": [change(c) for c in self.worse],
            "unchanged": self.unchanged,
            "unjudged": [{"query": p.query_key, "candidate": p.candidate_id, "rank": p.rank} for p in self.unjudged],
            "totals": {self.first.name: self.totals[0].as_dict(), self.second.name: self.totals[1].as_dict()},
        }


def diff_snapshots(db: Catalog, first: str, second: str, chosen: Scoring | None = None) -> SnapshotDiff:
    """Compare two snapshots by nDCG@k per query (today's verdicts), best gains and worst losses first."""
    chosen = chosen or scoring()
    a, b = load_snapshot(db, first), load_snapshot(db, second)
    known = read_verdicts(db).per_query()
    changes, unchanged = [], 0
    for key in sorted(set(a.lists) & set(b.lists)):
        verdicts = known.get(("item", key), {})
        before, after = (
            score_list([verdicts.get(c) for c in s.lists[key]], list(verdicts.values()), s.k, chosen).ndcg
            for s in (a, b)
        )
        if before is None or after is None or abs(after - before) < 1e-12:
            unchanged += 1
        else:
            changes.append(QueryChange(key, before, after))
    unjudged = [
        GapPair(key, candidate, b.method, rank)
        for key, found in sorted(b.lists.items())
        for rank, candidate in enumerate(found, start=1)
        if candidate not in a.lists.get(key, ()) and candidate not in known.get(("item", key), {})
    ]
    return SnapshotDiff(
        a,
        b,
        sorted((c for c in changes if c.change > 0), key=lambda c: -c.change),
        sorted((c for c in changes if c.change < 0), key=lambda c: c.change),
        unchanged,
        unjudged,
        (score_lists(a.ranked(), known, a.k, chosen), score_lists(b.ranked(), known, b.k, chosen)),
    )


@dataclass(frozen=True)
class Check:
    """A method today against a snapshot, by one measure under today's verdicts."""

    method: str
    baseline: str
    measure: str
    before: float
    after: float
    max_drop: float
    judged_share: float  # of the method's top k today

    @property
    def worse(self) -> bool:
        return self.before - self.after > self.max_drop

    def line(self) -> str:
        verdict = "WORSE" if self.worse else "ok"
        return (
            f"{verdict}: {self.method} {self.measure} {self.after:.3f} against {self.before:.3f} in snapshot "
            f"{self.baseline} (change {self.after - self.before:+.3f}, allowed drop {self.max_drop:.3f}; "
            f"{self.judged_share:.0%} of its top k judged)"
        )

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "baseline": self.baseline,
            "measure": self.measure,
            "baseline_value": self.before,
            "value": self.after,
            "max_drop": self.max_drop,
            "judged_share": self.judged_share,
            "worse": self.worse,
        }


def _value(figures: Figures, measure: str) -> float | None:
    return {"ndcg": figures.ndcg.value, "precision": figures.precision.value, "mrr": figures.mrr.value}[measure]


def check_against(
    space: MethodSpace, baseline: str, max_drop: float = 0.02, measure: str = "ndcg", chosen: Scoring | None = None
) -> Check:
    """The method's top k today for the snapshot's queries, against the snapshot, by `measure`."""
    if measure not in MEASURES:
        raise SnapshotError(f"measure {measure!r} is not one of {', '.join(MEASURES)}")
    chosen = chosen or scoring()
    db = space.catalog
    snapshot = load_snapshot(db, baseline)
    known = read_verdicts(db).per_query()
    today = [
        RankedList("item", q, "", found) for q, found in _current(space, sorted(snapshot.lists), snapshot.k).items()
    ]
    before = _value(score_lists(snapshot.ranked(), known, snapshot.k, chosen), measure)
    after = _value(score_lists(today, known, snapshot.k, chosen), measure)
    if before is None:
        raise SnapshotError(f"snapshot {baseline} has no judged result to compare with: label its results first")
    judged = sum(1 for r in today for c in r.candidates if c in known.get(("item", r.key), {}))
    share = judged / (len(today) * snapshot.k) if today else 0.0
    return Check(space.name, baseline, measure, before, after or 0.0, max_drop, share)
