"""The command line (`lookalike`, or `python -m core`): a thin layer over the library.

Each command group (catalog.py, methods.py, tune.py, search.py, curation.py, curate.py, serve.py, app.py) parses its arguments,
calls one library function and prints (a table for people, `--json` for scripts); common.py holds
what they share. Errors become one line on stderr and exit 2; details go to the log (`-v`).
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from pathlib import Path

from core.catalog.db import CatalogError
from core.cli import app, catalog, curate, curation, methods, search, serve, tune
from core.cli.common import Commands, Parser, global_options
from core.files import failures
from core.settings import use_db
from core.team.access import acting_as
from core.team.roles import LOCAL

log = logging.getLogger("core")

GROUPS = (catalog, methods, tune, search, curation, curate, serve, app)  # the order `--help` lists their commands in


def program_name() -> str:
    """How the user started us: `python -m core` or the installed `lookalike` script."""
    return "python -m core" if Path(sys.argv[0]).name == "__main__.py" else "lookalike"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(prog=prog or program_name(), description="Lookalike catalog tools")
    global_options(parser)
    common = argparse.ArgumentParser(add_help=False)
    global_options(common, given_only=True)
    sub = parser.add_subparsers(dest="command", required=True, action=Commands)
    for group in GROUPS:
        group.add_commands(sub, common)
    return parser


def _reader_gone() -> int:
    """The reader of our output stopped (`search --json | head`): end quietly, as a program stopped by
    SIGPIPE does (exit 141), with nothing more to write to the closed pipe."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a bad argument already told in one line
        return int(stop.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    use_db(args.db)  # the catalog of this command, for whatever finds its folders without opening it
    try:
        if getattr(args, "check_method", None) and args.method is not None:
            args.method = args.check_method(args.method, args.db)
        with acting_as(LOCAL):  # whoever runs a command on the server is its local admin (docs/team.md)
            code = args.func(args)
        sys.stdout.flush()  # a reader that stopped early (`| head`) is found here, not at exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except (CatalogError, OSError, ValueError, RuntimeError, sqlite3.Error, MemoryError) as exc:
        log.info("command failed", exc_info=True)  # the details, shown with -v
        print(f"error: {failures.one_line(exc, args.db)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; everything finished so far is saved", file=sys.stderr)
        return 130
