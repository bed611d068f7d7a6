"""The command line's errors (core/cli): bad numbers refused at the edge (and by the library alike),
every failure family one line with its details in the log, a bad setting named."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from core.catalog.importers import import_csv
from core.curation.export import export_similar
from core.engines.embed import embed_catalog
from core.search.space import open_space

from helpers import DEMO, one_line, run_cli, sha, small_styles

BAD_ARGUMENTS = [
    ("export", "--method", "color_hist", "-k", "-1"),
    ("export", "--method", "color_hist", "-k", "0"),
    ("evaluate", "--method", "color_hist", "-k", "0"),
    ("evaluate", "--method", "color_hist", "--queries", "0"),
    ("precision", "-k", "0"),
    ("search", "--item", "ID", "-k", "0"),
    ("index", "--method", "color_hist", "--trees", "0"),
    ("embed", "--method", "color_hist", "--batch-size", "0"),
    ("embed", "--method", "color_hist", "--batch-size", "-1"),
    ("embed", "--method", "color_hist", "--limit", "0"),
    ("embed", "--engine", "ray", "--workers", "0"),
    ("embed", "--engine", "ray", "--gpus-per-worker", "-1"),
    ("train-autoencoder", "--epochs", "0"),
    ("search", "--item", "ID", "--filter", "price_max=nan"),
    ("export", "--method", "color_hist", "--filter", "price_min=inf"),
    ("duplicates", "--method", "color_hist", "--threshold", "0"),
    ("duplicates", "--method", "color_hist", "--threshold", "1.5"),
    ("duplicates", "--method", "color_hist", "--threshold", "nan"),
    ("index", "--method", "color_hist", "--trees", "ten"),
]


def test_bad_numbers_are_one_line_and_exit_2_before_anything_runs(embedded_demo, tmp_path, capsys):
    from core.cli import main

    item = embedded_demo.execute("SELECT min(id) FROM items").fetchone()[0]
    embedded_demo.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = sha(embedded_demo.path)
    out = tmp_path / "similar.csv"
    for args in BAD_ARGUMENTS:
        args = [item if a == "ID" else a for a in args] + (["--out", str(out)] if args[0] == "export" else [])
        assert main([*args, "--db", str(embedded_demo.path)]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: argument ") and "--help" in err, (args, err)
    assert not out.exists() and not (tmp_path / "indices").exists()
    assert sha(embedded_demo.path) == before


def test_the_library_refuses_the_same_numbers(embedded_demo, tmp_path):
    from core.catalog.filters import parse_filters
    from core.curation.evaluate import evaluate

    for value in ("nan", "inf", "-inf"):
        with pytest.raises(ValueError, match="finite number"):
            parse_filters([f"price_max={value}"])
    assert parse_filters(["price_max=$1,200"]) == {"price_max": 1200.0}
    for k in (0, -1):
        with pytest.raises(ValueError, match="at least 1"):
            export_similar(open_space(embedded_demo, "color_hist"), k, tmp_path / "similar.csv", progress=False)
        with pytest.raises(ValueError, match="at least 1"):
            evaluate(open_space(embedded_demo, "color_hist"), k=k)
    with pytest.raises(ValueError, match="at least 1"):
        open_space(embedded_demo, "color_hist").build_index(trees=0, progress=False)
    for batch_size in (0, -1):
        with pytest.raises(ValueError, match="batch_size must be at least 1"):
            embed_catalog(embedded_demo, "color_hist", batch_size=batch_size, progress=False)
    assert not (tmp_path / "similar.csv").exists() and not embedded_demo.index_dir.exists()


def test_the_cli_says_the_disk_is_full_and_how_far_it_got(catalog, tmp_path, monkeypatch, capsys):
    from core.catalog import vectors
    from core.cli import main

    csv_path, folder = small_styles(tmp_path)
    import_csv(catalog, csv_path, folder, progress=False)
    real_store, calls = vectors.store, []

    def store_then_fill_the_disk(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real_store(*args, **kwargs)

    monkeypatch.setattr(vectors, "store", store_then_fill_the_disk)
    assert main(["embed", "--method", "color_hist", "--batch-size", "2", "--db", str(catalog.path)]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert err.startswith("error: the disk is full (database or disk is full)"), err
    assert "finished work was kept" in err and err.endswith("; 2 of 6 embedded before the error")
    monkeypatch.setattr(vectors, "store", real_store)
    assert main(["embed", "--method", "color_hist", "--db", str(catalog.path), "--json"]) == 0
    assert '"embedded": 4' in capsys.readouterr().out


@pytest.mark.parametrize(
    "failure, says",
    [
        (lambda: OSError(28, "No space left on device"), "the disk is full"),
        (lambda: MemoryError(), "out of memory"),
        (lambda: sqlite3.DatabaseError("database disk image is malformed"), "is damaged"),
    ],
    ids=["ENOSPC", "MemoryError", "malformed"],
)
def test_every_failure_family_is_one_line_with_details_in_the_log(
    demo_catalog, monkeypatch, capsys, caplog, failure, says
):
    from core.catalog import items as catalog_module
    from core.cli import main

    def fail(db):
        raise failure()

    monkeypatch.setattr(catalog_module, "stats", fail)
    caplog.set_level(logging.INFO, logger="core")  # what -v shows
    assert main(["stats", "--db", str(demo_catalog.path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err, err
    [record] = [r for r in caplog.records if r.name == "core"]
    assert record.exc_info and isinstance(record.exc_info[1], type(failure()))


def test_bad_threads_spare_help_and_name_the_variable(embedded_demo):
    env = {"LOOKALIKE_THREADS": "abc"}
    assert run_cli("--help", env=env).returncode == 0
    assert run_cli("stats", "--db", str(embedded_demo.path), env=env).returncode == 0
    line = one_line(
        run_cli("search", "--image", str(DEMO / "images" / "10129.jpg"), "--db", str(embedded_demo.path), env=env)
    )
    assert "LOOKALIKE_THREADS" in line and "'abc'" in line
