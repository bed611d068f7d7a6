"""`python -m core` catalog commands, run as a user would (a real subprocess)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import DEMO, FIXTURES, ROOT


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def test_import_csv_needs_no_flags_for_the_styles_layout(tmp_path):
    db = tmp_path / "c.db"
    done = run_cli("import-csv", str(DEMO / "styles.csv"), "--images", str(DEMO / "images"), "--db", str(db))
    assert done.returncode == 0, done.stderr
    stats = json.loads(run_cli("stats", "--json", "--db", str(db)).stdout)
    assert stats["items"] == stats["images_ok"] == 300 and stats["images_bad"] == 0


def test_db_defaults_to_the_environment_variable(tmp_path):
    db = tmp_path / "env.db"
    done = run_cli("import-farfetch", str(FIXTURES / "farfetch_40.csv"), env={"LOOKALIKE_DB": str(db)})
    assert done.returncode == 0, done.stderr
    assert db.exists()
    assert json.loads(run_cli("stats", "--json", env={"LOOKALIKE_DB": str(db)}).stdout)["items"] == 40


def test_exit_code_is_nonzero_only_when_nothing_imported(tmp_path):
    db = str(tmp_path / "c.db")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    missing = run_cli("import-farfetch", str(tmp_path / "nope.csv"), "--db", db)
    assert missing.returncode == 1 and "file not found" in missing.stderr
    assert run_cli("import-csv", str(empty), "--db", db).returncode == 1
    partial = tmp_path / "partial.csv"
    partial.write_text("id,productDisplayName\n1,Good\n,No id\n")
    done = run_cli("import-csv", str(partial), "--db", db)
    assert done.returncode == 0
    assert "row 3: no value in id column" in done.stderr


def test_newer_catalog_gives_one_line_error(tmp_path):
    db = tmp_path / "c.db"
    assert run_cli("stats", "--db", str(db)).returncode == 0
    import sqlite3
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
    done = run_cli("stats", "--db", str(db))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "newer than this Lookalike knows" in done.stderr
