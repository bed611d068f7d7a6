"""Pins, hides and rules as decisions (core/curation/decisions.py): who and when, history, undo,
CSV exchange between catalogs, and the `curate` commands."""

from __future__ import annotations

import json

import pytest

from core.curation import decisions
from core.curation.rules import Rules

from helpers import opened_copy, run_here


def items(db, n: int) -> list[str]:
    return [i for (i,) in db.execute("SELECT id FROM items ORDER BY id LIMIT ?", (n,))]


def test_every_change_is_kept_with_its_author_and_time(demo_catalog):
    a, b, c = items(demo_catalog, 3)
    decisions.pin(demo_catalog, a, b, 2, "ana")
    decisions.pin(demo_catalog, a, b, 4, "bo")
    decisions.hide(demo_catalog, c, "ana")
    decisions.set_rule(demo_catalog, "in_stock", "yes", "cy")
    history = decisions.history(demo_catalog)
    assert [(h.kind, h.value, h.author) for h in history] == [
        ("pin", "2", "ana"),
        ("pin", "4", "bo"),
        ("hide", "1", "ana"),
        ("rule", "on", "cy"),
    ]
    assert all(h.created_at.endswith("Z") for h in history)
    now = decisions.in_force(demo_catalog)
    assert {(c.subject(), c.value, c.author) for c in now} == {
        (f"pin {b} in {a}", "4", "bo"),
        (f"hide {c}", "1", "ana"),
        ("rule in_stock", "on", "cy"),
    }
    snapshot = decisions.curation_snapshot(demo_catalog)
    assert snapshot.pins == {a: [(4, b)]} and snapshot.hidden == {c} and snapshot.rules == Rules(in_stock=True)
    with pytest.raises(decisions.CurationError, match="a name"):
        decisions.hide(demo_catalog, a, "  ")
    with pytest.raises(decisions.CurationError, match="no catalog item"):
        decisions.hide(demo_catalog, "nope", "ana")


def test_the_same_change_twice_is_stored_once(demo_catalog):
    a, b, c = items(demo_catalog, 3)
    pinned = decisions.pin(demo_catalog, a, b, 2, "ana")
    assert decisions.pin(demo_catalog, a, b, 2, "ana") == pinned  # a double click
    hidden = decisions.hide(demo_catalog, c, "ana")
    assert decisions.hide(demo_catalog, c, "ana") == hidden
    decisions.pin(demo_catalog, a, b, 2, "bo")  # someone else saying the same is theirs to record
    decisions.unhide(demo_catalog, c, "ana")
    decisions.hide(demo_catalog, c, "ana")  # hidden again after the unhide: a change
    assert [(h.kind, h.value, h.author) for h in decisions.history(demo_catalog)] == [
        ("pin", "2", "ana"),
        ("hide", "1", "ana"),
        ("pin", "2", "bo"),
        ("hide", None, "ana"),
        ("hide", "1", "ana"),
    ]


def test_undo_restores_the_previous_value_as_a_change_of_its_own(demo_catalog):
    a, b, c = items(demo_catalog, 3)
    first = decisions.pin(demo_catalog, a, b, 2, "ana")
    moved = decisions.pin(demo_catalog, a, b, 5, "ana")
    hidden = decisions.hide(demo_catalog, c, "ana")
    with pytest.raises(decisions.CurationError, match=f"replaced by #{moved.id}"):
        decisions.undo(demo_catalog, first.id, "bo")
    undone = decisions.undo(demo_catalog, author="bo")  # the latest: the hide
    assert undone.undoes == hidden.id and undone.value is None and undone.author == "bo"
    assert decisions.curation_snapshot(demo_catalog).hidden == set()
    decisions.undo(demo_catalog, moved.id, "bo")
    assert decisions.curation_snapshot(demo_catalog).pins == {a: [(2, b)]}
    decisions.undo(demo_catalog, author="bo")  # undo the undo: back at 5
    assert decisions.curation_snapshot(demo_catalog).pins == {a: [(5, b)]}
    assert len(decisions.history(demo_catalog)) == 6


def test_curation_moves_between_catalogs_and_a_second_import_adds_nothing(demo_catalog, imported_demo_path, tmp_path):
    a, b, c = items(demo_catalog, 3)
    decisions.pin(demo_catalog, a, b, 3, "ana")
    decisions.hide(demo_catalog, c, "=cmd|' /C calc'!A0")  # a formula-like name survives the round trip
    decisions.set_rule(demo_catalog, "price_ratio", "2", "ana")
    decisions.set_rule(demo_catalog, "price_ratio", "off", "bo")
    assert decisions.export_curation(demo_catalog, tmp_path / "curation.csv") == 4
    other = next(opened_copy(imported_demo_path, tmp_path / "other.db"))
    report = decisions.import_curation(other, tmp_path / "curation.csv")
    assert (report.rows, report.items, report.problems) == (4, 4, [])
    assert [(c.kind, c.value, c.author, c.created_at) for c in decisions.history(other)] == [
        (c.kind, c.value, c.author, c.created_at) for c in decisions.history(demo_catalog)
    ]
    assert decisions.curation_snapshot(other) == decisions.curation_snapshot(demo_catalog)
    again = decisions.import_curation(other, tmp_path / "curation.csv")
    assert (again.items, again.duplicates) == (0, 4)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "kind,item_id,candidate_id,rule,value,author,created_at,undoes\n"
        f"pin,{a},nope,,1,ana,2026-01-01T00:00:00Z,\n"
        ",,,diversity,7,ana,2026-01-01T00:00:00Z,\n"
        f"hide,{a},,,1,ana,2026-01-01T00:00:00Z,\n",
        encoding="utf-8",
    )
    report = decisions.import_curation(other, bad)
    assert report.items == 1 and [p.where for p in report.problems] == ["row 2", "row 3"]
    other.conn.close()


def test_curate_commands_pin_hide_rule_list_undo_and_export(demo_catalog, tmp_path):
    a, b, c = items(demo_catalog, 3)
    db = str(demo_catalog.path)
    assert run_here("--db", db, "curate", "pin", a, b, "--position", "3", "--by", "ana").returncode == 0
    assert run_here("--db", db, "curate", "hide", c, "--by", "bo").returncode == 0
    assert run_here("--db", db, "curate", "rule", "max_per_brand", "2").returncode == 0  # by the user's name
    listed = run_here("--db", db, "curate", "list")
    assert f"pin {b} in {a}" in listed.stdout and "by ana" in listed.stdout and f"hide {c}" in listed.stdout
    shown = json.loads(run_here("--db", db, "curate", "list", "--json").stdout)
    assert {s["kind"] for s in shown} == {"pin", "hide", "rule"} and all(s["author"] for s in shown)
    undone = run_here("--db", db, "curate", "undo", "--by", "cy")
    assert undone.returncode == 0 and "undoes #3" in undone.stdout
    assert "rule max_per_brand" not in run_here("--db", db, "curate", "list").stdout
    bad = run_here("--db", db, "curate", "rule", "diversity", "3")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "from 0 to 1" in bad.stderr
    missing = run_here("--db", db, "curate", "unhide", a)
    assert missing.returncode == 2 and "is not hidden" in missing.stderr
    out = tmp_path / "c.csv"
    assert run_here("--db", db, "curate", "export", str(out)).returncode == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 5
    assert "4 changes" not in run_here("--db", db, "curate", "import", str(out)).stdout  # all already there
    assert len(run_here("--db", db, "curate", "history", "--json").stdout) > 2
