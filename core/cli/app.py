"""The app command: the Streamlit app installed with the package, with the project's Streamlit settings."""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from importlib import resources
from pathlib import Path

from core.cli.serve import port
from core.settings import settings
from core.team.proxy import is_loopback
from core.team.roles import read_roles

DEFAULT_PORT = 8501  # Streamlit's own


class AppError(ValueError):
    """An app that must not start, in one line."""


def app_folder() -> Path:
    """The installed app (streamlit_app/): Home.py, and its Streamlit settings beside it."""
    return Path(str(resources.files("streamlit_app")))


def streamlit_options(config: Path, **given: object) -> list[str]:
    """The settings of a Streamlit config.toml as `streamlit run` options, so they apply from any
    folder (Streamlit itself reads .streamlit/config.toml only in the folder it is started from);
    `given` (`server_port=8502`) replaces or adds a setting."""
    table = tomllib.loads(config.read_text(encoding="utf-8"))
    values = {f"{section}.{key}": value for section, keys in table.items() for key, value in keys.items()}
    values.update({name.replace("_", ".", 1): value for name, value in given.items()})
    return [f"--{name}={str(value).lower() if isinstance(value, bool) else value}" for name, value in values.items()]


def streamlit_command(host: str, listen_port: int) -> list[str]:
    """`python -m streamlit run <Home.py>` with the packaged settings, on `host`:`listen_port`."""
    folder = app_folder()
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(folder / "Home.py"),
        *streamlit_options(folder / "streamlit_config.toml", server_address=host, server_port=listen_port),
    ]


def check_host(host: str) -> None:
    """Refuse an address beyond this machine unless people sign in (LOOKALIKE_AUTH, docs/team.md)."""
    if not is_loopback(host) and settings().auth is None:
        raise AppError(
            f"refusing to open the app on {host} without sign-in: set LOOKALIKE_AUTH=oidc or proxy and "
            "LOOKALIKE_ROLES_FILE (docs/team.md), or listen on this computer only (--host 127.0.0.1)"
        )


SECRETS = (Path(".streamlit") / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml")  # where Streamlit looks


def check_sign_in(secrets: tuple[Path, ...] = SECRETS) -> None:
    """With sign-in on, refuse to start without a roles file that can be used (nobody would get in), or,
    for `oidc`, without the `[auth]` section of Streamlit's secrets.toml (docs/team.md)."""
    mode = settings().auth
    if mode is None:
        return
    roles_file = settings().roles_file
    if roles_file is None:
        raise AppError("LOOKALIKE_AUTH is on but LOOKALIKE_ROLES_FILE names no roles file: nobody could get in")
    read_roles(roles_file)  # RolesError (one line) naming the line that cannot be used
    if mode == "oidc" and not any(_has_auth(path) for path in secrets):
        raise AppError(
            "LOOKALIKE_AUTH=oidc needs an [auth] section (your provider's client_id, client_secret, "
            "server_metadata_url, redirect_uri, cookie_secret) in .streamlit/secrets.toml here; see docs/team.md"
        )


def _has_auth(path: Path) -> bool:
    try:
        return "auth" in tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def cmd_app(args: argparse.Namespace) -> int:
    check_host(args.host)
    check_sign_in()
    command = streamlit_command(args.host, args.port)
    env = {**os.environ, "LOOKALIKE_DB": str(args.db)}  # the app opens the catalog `--db` names
    os.execve(sys.executable, command, env)  # the process becomes Streamlit: Ctrl+C stops it directly
    return 0  # not reached


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("app", parents=[common], help="the Streamlit app on this computer (docs/app.md)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this computer only; any other needs LOOKALIKE_AUTH)",
    )
    p.add_argument("--port", type=port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.set_defaults(func=cmd_app)
