"""Snapshots: freeze a method's top k, diff two snapshots by nDCG per query, check a method against one
(exit 1 when worse), on the shared photos with simulated verdicts."""

from __future__ import annotations

import json

import pytest

from core.curation.snapshots import SnapshotError, check_against, diff_snapshots, load_snapshot, take_snapshot
from core.search.space import open_space

from helpers import judge_top_k, needs_shared, page, run_here, texts


@needs_shared
def test_a_worse_method_fails_the_check_and_the_diff_names_its_queries(fashion_photos, monkeypatch):
    db = fashion_photos
    queries = [r[0] for r in db.execute("SELECT id FROM items ORDER BY id")][1::8][:40]
    judge_top_k(db, "hybrid", queries, "sim")
    cli = lambda *args: run_here(*args, "--db", str(db.path))  # noqa: E731

    done = cli("evaluate", "snapshot", "--method", "hybrid", "--name", "before")
    assert done.returncode == 0, done.stderr
    assert "snapshot before: hybrid's top 10 for 40 judged queries" in done.stdout
    taken = load_snapshot(db, "before")
    assert sorted(taken.lists) == sorted(queries) and all(len(found) == 10 for found in taken.lists.values())
    with pytest.raises(SnapshotError, match="exists"):
        take_snapshot(open_space(db, "hybrid"), "before")

    same = cli("evaluate", "check", "--method", "hybrid", "--baseline", "before", "--max-drop", "0.02")
    assert same.returncode == 0 and same.stdout.startswith("ok: hybrid ndcg") and len(same.stdout.splitlines()) == 1

    worse = cli("evaluate", "check", "--method", "color_hist", "--baseline", "before", "--max-drop", "0.02")
    assert worse.returncode == 1 and worse.stdout.startswith("WORSE: color_hist ndcg")
    assert len(worse.stdout.splitlines()) == 1
    result = check_against(open_space(db, "color_hist"), "before", 0.02)
    assert result.worse and result.before - result.after > 0.02 and result.judged_share < 1

    assert cli("evaluate", "snapshot", "--method", "color_hist", "--name", "after").returncode == 0
    found = diff_snapshots(db, "before", "after")
    assert found.worse and len(found.worse) > len(found.better)
    assert len(found.worse) + len(found.better) + found.unchanged == 40
    assert all(c.after < c.before for c in found.worse)
    assert found.unjudged and all(p.candidate_id not in taken.lists[p.query_key] for p in found.unjudged)
    shown = cli("evaluate", "diff", "before", "after")
    assert shown.returncode == 0 and f"{len(found.worse)} queries worse in after" in shown.stdout
    assert found.worse[0].query_key in shown.stdout  # the queries are named
    as_json = json.loads(cli("evaluate", "diff", "before", "after", "--json").stdout)
    assert [c["query"] for c in as_json["worse"]] == [c.query_key for c in found.worse]
    assert as_json["totals"]["before"]["ndcg_at_k"]["value"] > as_json["totals"]["after"]["ndcg_at_k"]["value"]

    missing = cli("evaluate", "check", "--method", "hybrid", "--baseline", "nope")
    assert missing.returncode == 2 and "no snapshot named 'nope'" in missing.stderr
    assert cli("evaluate").returncode == 2  # neither --method nor a subcommand: one line, as before

    monkeypatch.setenv("LOOKALIKE_DB", str(db.path))
    at = page("precision")  # snapshots side by side
    snapshots = at.dataframe[-1].value
    assert list(snapshots["snapshot"]) == ["before", "after"] and list(snapshots["method"]) == ["hybrid", "color_hist"]
    assert snapshots.iloc[0]["nDCG@k"] > snapshots.iloc[1]["nDCG@k"]
    assert f"{len(found.worse)} worse" in texts(at)
