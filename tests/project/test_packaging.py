"""The package as a user installs it (pyproject.toml): a wheel built from the checkout, installed into a
fresh virtual environment outside it, run from an empty folder.

No network: the wheel is built with `--no-build-isolation` and installed with `--no-deps --no-index`; the
fresh environment borrows the dependencies of the one running the tests (its site-packages, added by a
.pth file, which runs none of that folder's own .pth files, so this checkout's editable install stays out).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from helpers import DEMO, ROOT

SOURCES = ("pyproject.toml", "README.md", ".streamlit", "core", "streamlit_app", "demo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_wheel(out: Path) -> Path:
    """The wheel of a copy of the checkout (a build writes build/ and *.egg-info beside its sources)."""
    source = out / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out), str(source)],
        check=True,
    )
    return next(out.glob("lookalike-*.whl"))


def fresh_venv(wheel: Path, folder: Path) -> Path:
    """A new environment holding the wheel; its bin/ folder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, cwd=folder.parent)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shared = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "borrowed.pth").write_text("\n".join(sorted(shared)) + "\n")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python)]
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True)
    return folder / "bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the bin/ folder of a fresh environment it is installed in), outside the checkout."""
    out = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(out)
    return wheel, fresh_venv(wheel, out / "venv")


def clean_env() -> dict[str, str]:
    """This environment without the checkout on the import path or a catalog chosen, offline."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LOOKALIKE_DB")}
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def run(bin_dir: Path, folder: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`lookalike ARGS` from `folder`, with nothing of the checkout on the import path."""
    return subprocess.run(
        [str(bin_dir / "lookalike"), *args],
        cwd=folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def first_answer(command: list[str], folder: Path, url: str, wait_s: float = 60.0) -> tuple[int, str]:
    """Start a server, return (status, body) of its first answer to `url`, then stop it."""
    import httpx2 as httpx

    server = subprocess.Popen(
        command, cwd=folder, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                reply = httpx.get(url, timeout=5)
                return reply.status_code, reply.text
            except httpx.TransportError:
                assert server.poll() is None, f"{command} stopped with {server.returncode}"
                time.sleep(0.2)
        raise AssertionError(f"no answer from {url} in {wait_s:.0f} s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_wheel_holds_every_migration_the_app_and_the_demo_slice(installed):
    names = set(zipfile.ZipFile(installed[0]).namelist())
    migrations = {f"core/catalog/migrations/{p.name}" for p in (ROOT / "core" / "catalog" / "migrations").glob("*.sql")}
    assert migrations and migrations <= names
    assert {"streamlit_app/Home.py", "streamlit_app/ui.py", "streamlit_app/streamlit_config.toml"} <= names
    photos = {n for n in names if n.startswith("core/demo_data/images/")}
    assert len(photos) == len(list((DEMO / "images").glob("*.jpg"))) == 300
    assert "core/demo_data/styles.csv" in names
    assert not {n for n in names if n.startswith(("tests/", "benchmarks/", "docs/"))}


def test_every_declared_dependency_is_pinned_in_the_lock_at_a_version_it_accepts():
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pinned = Requirement(line)
            pins[canonicalize_name(pinned.name)] = next(iter(pinned.specifier)).version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = [
        *project["project"]["dependencies"],
        *(r for extra in project["project"]["optional-dependencies"].values() for r in extra),
        *project["dependency-groups"]["dev"],
    ]
    assert len(declared) > 30
    for text in declared:
        wanted = Requirement(text)
        name = canonicalize_name(wanted.name)
        assert name in pins, f"{wanted.name} is declared in pyproject.toml but not pinned in requirements.txt"
        assert wanted.specifier.contains(pins[name]), f"{text} refuses the lock's {pins[name]}"


def test_the_installed_package_imports_searches_and_serves_from_an_empty_folder(installed, tmp_path):
    bin_dir = installed[1]
    here = tmp_path / "empty"
    here.mkdir()
    probe = subprocess.run(
        [bin_dir / "python", "-c", "import core; print(core.__file__)"], cwd=here, capture_output=True, text=True
    )
    assert Path(probe.stdout.strip()).is_relative_to(bin_dir.parent), probe.stdout
    demo = Path(
        subprocess.run(
            [bin_dir / "python", "-c", "from core.demo import DEMO_DIR; print(DEMO_DIR)"],
            cwd=here,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    assert demo.is_relative_to(bin_dir.parent)  # the installed copy of the demo slice, not the checkout's

    imported = run(
        bin_dir, here, "--db", "shop.db", "import-csv", str(demo / "styles.csv"), "--images", str(demo / "images")
    )
    assert imported.returncode == 0 and "300 new" in imported.stdout, imported.stderr
    assert run(bin_dir, here, "--db", "shop.db", "embed", "--method", "color_hist").returncode == 0
    found = run(
        bin_dir, here, "--db", "shop.db", "search", "--item", "10129", "--method", "color_hist", "-k", "3", "--json"
    )
    assert found.returncode == 0, found.stderr
    answer = json.loads(found.stdout)
    assert answer["query"]["item_id"] == "10129" and [r["rank"] for r in answer["results"]] == [1, 2, 3]

    port = free_port()
    status, body = first_answer(
        [str(bin_dir / "lookalike"), "--db", "shop.db", "serve", "--port", str(port)],
        here,
        f"http://127.0.0.1:{port}/items/10129/similar?k=3&method=color_hist",
    )
    assert status == 200, body
    assert [r["item_id"] for r in json.loads(body)["results"]] == [r["item_id"] for r in answer["results"]]


def test_the_installed_app_starts_and_renders_from_an_empty_folder_and_stays_on_this_computer(installed, tmp_path):
    bin_dir = installed[1]
    refused = run(bin_dir, tmp_path, "app", "--host", "0.0.0.0")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "without sign-in" in refused.stderr
    port = free_port()
    status, body = first_answer(
        [str(bin_dir / "lookalike"), "--db", "shop.db", "app", "--port", str(port)],
        tmp_path,
        f"http://127.0.0.1:{port}/_stcore/health",
    )
    assert (status, body) == (200, "ok")
    page = (  # the installed Home.py renders, with the installed app's own modules
        "import json; from streamlit.testing.v1 import AppTest; from core.cli.app import app_folder; "
        "at = AppTest.from_file(str(app_folder() / 'Home.py'), default_timeout=60).run(); import ui; "
        "print(json.dumps([ui.__file__, [t.value for t in at.title], [e.value for e in at.exception]]))"
    )
    rendered = subprocess.run(
        [bin_dir / "python", "-c", page],
        cwd=tmp_path,
        env=clean_env() | {"LOOKALIKE_DB": "shop.db"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stderr
    ui_file, titles, errors = json.loads(rendered.stdout.splitlines()[-1])
    assert Path(ui_file).is_relative_to(bin_dir.parent) and titles == ["Lookalike"] and errors == []


def test_streamlit_binds_loopback_only():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"
    assert "server.address" in (ROOT / "docs" / "safety.md").read_text(encoding="utf-8")
