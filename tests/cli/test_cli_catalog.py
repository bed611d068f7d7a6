"""`python -m core` catalog commands, run as a user would (a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import DEMO, FIXTURES, ROOT, run_cli


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
    assert run_cli("import-csv", str(DEMO / "styles.csv"), "--db", str(db)).returncode == 0
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
    done = run_cli("stats", "--db", str(db))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "newer than this Lookalike knows" in done.stderr


def test_only_imports_and_demo_create_a_catalog(tmp_path, capsys):
    from core.cli import main

    missing = tmp_path / "nothing.db"
    for args in (
        ["stats"],
        ["precision"],
        ["labels", "export", str(tmp_path / "l.csv")],
        ["labels", "import", str(tmp_path / "l.csv")],
        ["evaluate", "--method", "color_hist"],
        ["search", "--item", "1", "--method", "color_hist"],
        ["index", "--method", "color_hist"],
        ["export", "--method", "color_hist", "--out", str(tmp_path / "s.csv")],
        ["duplicates", "--method", "color_hist"],
        ["embed", "--method", "color_hist"],
        ["train-autoencoder"],
    ):
        assert main([*args, "--db", str(missing)]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"no catalog at {missing}" in err, (args, err)
    assert main(["methods", "--db", str(missing)]) == 0  # the methods need no catalog
    assert "color_hist" in capsys.readouterr().out
    assert sorted(tmp_path.iterdir()) == []


def test_read_commands_open_the_catalog_read_only(embedded_demo, tmp_path, capsys, monkeypatch):
    from core import cli
    from core.cli import common

    from helpers import sha

    opened = []
    real_open = common.open_catalog

    def record(path, **how):
        opened.append(how)
        return real_open(path, **how)

    monkeypatch.setattr(common, "open_catalog", record)
    embedded_demo.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = sha(embedded_demo.path)
    for args in (
        ["stats"],
        ["methods"],
        ["precision"],
        ["labels", "export", str(tmp_path / "l.csv")],
        ["evaluate", "--method", "color_hist", "--queries", "20"],
    ):
        opened.clear()
        assert cli.main([*args, "--db", str(embedded_demo.path)]) == 0, (args, capsys.readouterr().err)
        assert opened == [{"read_only": True}] or opened == [{"read_only": True, "create": False}], (args, opened)
    assert sha(embedded_demo.path) == before


def test_global_options_work_before_and_after_the_command(tmp_path):
    db = str(tmp_path / "c.db")
    assert run_cli("import-farfetch", str(FIXTURES / "farfetch_40.csv"), "--db", db).returncode == 0
    for args in (
        ("--db", db, "stats", "--json"),
        ("--json", "--db", db, "stats"),
        ("stats", "--db", db, "--json"),
        ("-v", "--db", db, "stats", "--json"),
        ("--db", str(tmp_path / "other.db"), "stats", "--db", db, "--json"),
    ):
        done = run_cli(*args)
        assert done.returncode == 0, (args, done.stderr)
        assert json.loads(done.stdout)["items"] == 40, args
    assert not (tmp_path / "other.db").exists()  # the option after the command wins


def test_unknown_method_is_one_line_and_exit_2_for_every_command(tmp_path):
    db = str(tmp_path / "c.db")
    out = tmp_path / "similar.csv"
    for args in (
        ("embed", "--method", "typo"),
        ("export", "--method", "typo", "--out", str(out)),
        ("index", "--method", "typo"),
        ("evaluate", "--method", "typo"),
        ("duplicates", "--method", "typo"),
        ("search", "--method", "typo", "--item", "1"),
        ("search", "--method", "efficientnet_lite0=0.7,typo=0.3", "--item", "1"),
        ("download-weights", "typo"),
    ):
        done = run_cli(*args, "--db", db)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: unknown method 'typo'"), args
        assert "efficientnet_lite0" in done.stderr and done.stdout == ""
    assert not out.exists()
    done = run_cli("download-weights", "color_hist", "--db", db)
    assert done.returncode == 2 and done.stderr == "error: color_hist has no hub weights to download (none needed)\n"


PROBE = (
    "import sys; from core.cli import main; rc = main(sys.argv[1:]); "
    "print('loaded:', sorted({'torch', 'timm', 'transformers', 'openvino', 'onnxruntime', 'pandas'} & set(sys.modules)), "
    "file=sys.stderr); sys.exit(rc)"
)


def model_libraries_loaded(*args: str) -> list[str]:
    """Run a command as `python -m core` would and name the model libraries it imported, and pandas
    (half a second of start-up that sqlite-utils would pull in; LOOKALIKE_MODELS, set by conftest.py,
    holds the default's conversion)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stderr.strip().splitlines()[-1].removeprefix("loaded: ").replace("'", '"'))


def test_commands_that_need_no_model_import_no_model_library(embedded_demo_path, tmp_path):
    import shutil
    import sqlite3

    db = tmp_path / "demo.db"
    shutil.copy(embedded_demo_path, db)
    with sqlite3.connect(db) as conn:
        item = conn.execute("SELECT min(item_id) FROM embeddings").fetchone()[0]
        conn.execute(
            "DELETE FROM embeddings WHERE method = 'efficientnet_lite0' AND item_id IN "
            "(SELECT item_id FROM embeddings WHERE method = 'efficientnet_lite0' ORDER BY item_id DESC LIMIT 5)"
        )
    runtime = ["openvino"]  # the default's backend here: it runs the model, or (methods) reads the CPU's precision
    for args in (
        ("stats", "--json"),
        ("search", "--item", item, "--json"),
        ("search", "--item", item, "--method", "efficientnet_lite0=0.8,color_hist=0.2"),
        ("labels", "export", str(tmp_path / "labels.csv")),
        ("precision", "--json"),
        ("export", "--method", "color_hist", "-k", "3", "--out", str(tmp_path / "similar.csv")),
        ("index", "--method", "color_hist"),
        ("evaluate", "--method", "color_hist", "--queries", "20"),
        ("duplicates", "--method", "color_hist", "--threshold", "0.99"),
    ):
        assert model_libraries_loaded(*args, "--db", str(db)) == [], args
    for args in (("methods", "--json"), ("embed", "--json")):  # the default on OpenVINO, once converted: no torch
        assert model_libraries_loaded(*args, "--db", str(db)) == runtime, args
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM embeddings WHERE method = 'efficientnet_lite0'").fetchone()[0] == 300


def test_help_names_the_program_the_way_it_was_started(monkeypatch, capsys):
    from core.cli import main

    monkeypatch.setattr(sys, "argv", [str(ROOT / ".venv" / "bin" / "lookalike")])
    assert main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: lookalike ")
    assert run_cli("--help").stdout.startswith("usage: python -m core ")


def test_every_command_and_option_explains_itself_with_its_default(capsys):
    """`COMMAND --help` opens with a one-line description; every option has help, naming its default."""
    import argparse

    from core.cli import build_parser, main

    def explained(parser: argparse.ArgumentParser, name: str) -> None:
        for option in parser._actions:
            if option.dest == "help":
                continue
            assert option.help, (name, option.dest)
            if option.default not in (None, False, [], argparse.SUPPRESS):
                assert "default" in option.help, (name, option.dest, option.help)
            if isinstance(option, argparse._SubParsersAction):  # subcommands (evaluate snapshot, curate pin, ...)
                for sub, command in option.choices.items():
                    assert command.description and command.description.endswith("."), (name, sub)
                    explained(command, f"{name} {sub}")

    commands = next(a for a in build_parser("lookalike")._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        assert command.description and command.description.endswith("."), name
        explained(command, name)
    assert main(["serve", "--help"]) == 0
    said = capsys.readouterr().out
    assert "LOOKALIKE_API_KEY" in said and "default 8000" in said
    assert main(["import-csv", "--help"]) == 0
    assert "--title-col COLUMN" in capsys.readouterr().out.replace("\n", " ")


def test_outside_the_virtualenv_one_line_says_to_activate_it():
    """A Python without the project's packages (here: without site-packages) gets one line, no traceback."""
    done = subprocess.run(
        [sys.executable, "-S", "-m", "core", "stats"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "source .venv/bin/activate" in done.stderr and ".venv/bin/lookalike" in done.stderr


def numeric_options() -> list[tuple[str, str]]:
    """(command, option) of every option whose value is a number, found by walking the parser."""
    import argparse
    from pathlib import Path

    from core.cli import build_parser

    def numeric(kind) -> bool:  # its value is a number (not, say, a list of method names)
        try:
            return isinstance(kind("1"), int | float)
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            return True

    found = []
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, parser in action.choices.items():
                for option in parser._actions:
                    if option.option_strings and option.type not in (None, str, Path) and numeric(option.type):
                        found.append((command, option.option_strings[-1]))
    return found


def test_every_numeric_option_is_bounded_and_checked_before_anything_runs(tmp_path, capsys):
    """Too large for any runtime (2^31 overflows a C int), not finite, or below its floor: one line, no catalog."""
    from core.cli import main

    options = numeric_options()
    assert ("index", "--trees") in options and ("search", "-k") in options and ("embed", "--batch-size") in options
    db = tmp_path / "never.db"
    for command, option in options:
        for value in ("2147483648", "99999999999999999999999", "1e400", "nan", "-1"):
            assert main([command, option, value, "--db", str(db)]) == 2, (command, option, value)
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0 and f"argument {option}" in err, (command, option, value, err)
    assert not db.exists()


def test_threads_setting_is_bounded(monkeypatch):
    from core.settings import SettingError, settings

    for value in ("99999999999999999999", "4097", "0"):
        monkeypatch.setenv("LOOKALIKE_THREADS", value)
        with pytest.raises(SettingError, match="LOOKALIKE_THREADS must be a whole number"):
            assert settings().threads
    monkeypatch.setenv("LOOKALIKE_THREADS", "3")
    assert settings().threads == 3


def test_the_models_folder_is_the_given_catalogs_before_the_catalog_exists(tmp_path, monkeypatch):
    """`download-weights clip --db new/c.db` names (and would fill) new/models/clip, the folder that catalog
    reads, not the one beside $LOOKALIKE_DB; `methods --db` says the same; no catalog is made."""
    from helpers import one_line, run_here

    monkeypatch.delenv("LOOKALIKE_MODELS", raising=False)
    monkeypatch.setenv("LOOKALIKE_DB", str(tmp_path / "elsewhere" / "catalog.db"))
    db = tmp_path / "new" / "c.db"
    line = one_line(run_here("download-weights", "clip", "--db", str(db)))
    assert f"copy the model's files into {tmp_path / 'new' / 'models' / 'clip'}" in line
    listed = run_here("methods", "--db", str(db))
    assert listed.returncode == 0 and str(tmp_path / "new" / "models" / "clip") in listed.stdout
    assert "elsewhere" not in listed.stdout + line and not db.exists()


def test_migrate_upgrades_an_older_catalog_once_and_says_so(tmp_path, monkeypatch):
    from core.catalog import db as catalog_db
    from core.catalog.db import migrations, open_catalog, schema_version

    from helpers import one_line, run_here

    only_first = tmp_path / "migrations"
    only_first.mkdir()
    first = migrations()[0][1]
    (only_first / first.name).write_text(first.read_text())
    newest = migrations()[-1][0]
    with monkeypatch.context() as patch:
        patch.setattr(catalog_db, "MIGRATIONS_DIR", only_first)
        open_catalog(tmp_path / "old.db").conn.close()  # a catalog of the first release
    db = str(tmp_path / "old.db")
    done = run_here("migrate", "--db", db)
    assert done.returncode == 0 and done.stdout == (
        f"upgraded {db} to schema version {newest} (applied {', '.join(str(v) for v in range(2, newest + 1))})\n"
    ), done
    assert run_here("migrate", "--db", db, "--json").stdout == f'{{"schema_version": {newest}, "applied": []}}\n'
    assert schema_version(open_catalog(db, read_only=True)) == newest
    assert "no catalog at" in one_line(run_here("migrate", "--db", str(tmp_path / "none.db")))
    assert not (tmp_path / "none.db").exists()
