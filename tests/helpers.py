"""What tests share besides fixtures: the repository's folders, the shared-data marker, the command
line as a user runs it, app helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
FIXTURES = ROOT / "tests" / "fixtures"
DEMO = ROOT / "demo"
APP = ROOT / "streamlit_app"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m core ARGS` in a real subprocess, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def page(name: str):
    """The app opened at its entry point (Home.py) and switched to views/<name>.py, as a person would."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=120)
    at.run()
    if name != "home":
        at.switch_page(f"views/{name}.py").run()
    assert not at.exception, at.exception
    return at


def texts(at) -> str:
    """Every text the page shows, one element a line."""
    parts = [
        e.value
        for kind in ("markdown", "caption", "info", "success", "error", "warning", "title", "subheader")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)
