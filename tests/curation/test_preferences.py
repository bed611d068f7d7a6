"""App preferences: remembered beside the catalog, written atomically, a bad file ignored."""

from __future__ import annotations

import json

from core.curation.preferences import MAX_BYTES, load_preferences, preferences_path, remember


def test_values_round_trip_and_keep_each_other(tmp_path):
    assert load_preferences(tmp_path) == {}
    remember(tmp_path, "labeler", "Zoë")
    remember(tmp_path, "other", "x")
    remember(tmp_path, "labeler", "ana")
    assert load_preferences(tmp_path) == {"labeler": "ana", "other": "x"}
    assert [p.name for p in tmp_path.iterdir()] == [preferences_path(tmp_path).name]  # no temporary left


def test_a_bad_file_is_ignored_and_then_replaced(tmp_path, caplog):
    path = preferences_path(tmp_path)
    for content in ("{not json", "[1, 2]", json.dumps({"labeler": 3, "ok": "yes"}), " " * (MAX_BYTES + 1)):
        path.write_text(content, encoding="utf-8")
        expected = {"ok": "yes"} if "ok" in content else {}
        assert load_preferences(tmp_path) == expected
    assert "ignoring app preferences" in caplog.text
    remember(tmp_path, "labeler", "bo")
    assert json.loads(path.read_text(encoding="utf-8")) == {"labeler": "bo"}
