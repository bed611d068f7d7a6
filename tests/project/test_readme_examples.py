"""Every `python -m core` example in README.md runs as written on the demo catalog `make app` builds.

A bash block preceded by `<!-- not run by tests/project/test_readme_examples.py: REASON -->` is left out
(your own files, a GPU, a cluster). The commands run in this process (`core.cli.main`, as
`python -m core` calls it) from a folder laid out like the repository after `make app`: `demo/`
and `data/demo.db` (the session's embedded demo), so the README's relative paths mean what they say.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

from core.cli import main

from helpers import DEMO, ROOT

# (the file's path before the tests were grouped by package, tests/test_readme_examples.py, still counts)
SKIP = re.compile(r"<!-- not run by tests/(?:project/)?test_readme_examples\.py: (.+) -->")
TUNE_QUICKLY = ["--epochs", "3", "--dim", "16", "--force"]  # the README's tune, kept to seconds (and saved)


def bash_blocks(text: str) -> list[tuple[str | None, list[str]]]:
    """(the reason it is not run, or None; its lines with `\\` continuations joined) per bash block."""
    blocks, current, reason, previous = [], None, None, ""
    for line in text.splitlines():
        if current is None and line.strip() == "```bash":
            found = SKIP.fullmatch(previous.strip())
            current, reason = [], found.group(1) if found else None
        elif current is not None and line.strip() == "```":
            blocks.append((reason, current))
            current = None
        elif current is not None:
            if current and current[-1].endswith("\\"):
                current[-1] = current[-1][:-1] + " " + line.strip()
            else:
                current.append(line)
        if line.strip():
            previous = line
    return blocks


def examples() -> list[str]:
    """The command lines of the README's bash blocks that are run."""
    return [line for reason, lines in bash_blocks((ROOT / "README.md").read_text()) if reason is None for line in lines]


def test_the_readme_has_examples_to_run_and_says_why_others_are_not():
    blocks = bash_blocks((ROOT / "README.md").read_text())
    assert sum(line.startswith("python -m core") for line in examples()) >= 15
    assert sorted(reason for reason, _ in blocks if reason) == [
        "needs a GPU",
        "needs a Ray cluster",
        "needs your team's labels",
        "these need your own files",
    ]


def test_every_readme_example_runs_on_the_demo_catalog(embedded_demo_path, tmp_path, monkeypatch, capsys):
    (tmp_path / "data").mkdir()
    shutil.copy(embedded_demo_path, tmp_path / "data" / "demo.db")
    (tmp_path / "demo").symlink_to(DEMO)
    monkeypatch.chdir(tmp_path)
    printed = {}
    for line in examples():
        words = shlex.split(line, comments=True)
        if not words or words[:2] in (["make", "app"], ["make", "test"]) or words[0] == "source":
            continue  # set-up lines: `make app` built what this test copied
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            monkeypatch.setenv(name, value)
            continue
        assert words[:3] == ["python", "-m", "core"], f"not a command this test knows how to run: {line}"
        argv = words[3:] + (TUNE_QUICKLY if words[3] == "tune" else [])
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0 and "Traceback" not in err, f"{line}\n{err}"
        assert out.strip(), f"{line} printed nothing"
        printed[line] = out

    def output(start: str) -> str:
        return next(out for line, out in printed.items() if line.startswith(start))

    assert "300 items imported from 300 rows: 0 new, 0 updated, 300 unchanged" in output("python -m core import-csv")
    ready = {line.split()[0] for line in output("python -m core methods").splitlines() if " ready " in line}
    assert {"efficientnet_lite0", "color_hist", "hybrid", "minilm"} <= ready  # searchable now, as `make app` leaves it
    header, *heels = output("python -m core search --item 10129 --filter").splitlines()
    assert "category" in header and len(heels) == 10 and all(" Heels " in hit for hit in heels)
    exports = sorted(p.name for p in (tmp_path / "data" / "demo" / "exports").iterdir())
    assert [name.split("_2")[0] for name in exports] == ["curation", "labels", "similar_efficientnet_lite0_top10"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "demo"]  # nothing written beside the commands
    assert (
        Path(tmp_path / "data" / "demo" / "exports" / exports[2]).read_text(encoding="utf-8-sig").count("\n")
        == 1 + 3000
    )


def test_search_help_explains_k_and_lists_every_filter_key(capsys):
    from core.catalog.filters import FLAG_KEYS, NUMBER_KEYS, TEXT_KEYS

    assert main(["search", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "-k K how many look-alikes to print (default 10)" in shown
    assert "--filter KEY=VALUE keep only results that match" in shown
    assert all(key in shown for key in (set(TEXT_KEYS) - {"color"}) | set(NUMBER_KEYS) | FLAG_KEYS)
