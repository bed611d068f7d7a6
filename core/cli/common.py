"""What every command group shares: the one-line argparse errors, argument types, the global options,
the method check, opening the catalog and printing an import report."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import NoReturn

from core.catalog.db import Catalog, CatalogError, open_catalog
from core.settings import settings


class Parser(argparse.ArgumentParser):
    """argparse with its errors in one line, like every other error of the command line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class Commands(argparse._SubParsersAction):
    """Subcommands whose own `--help` opens with their one-line summary (the `help` the list shows)."""

    def add_parser(self, name, **kwargs):
        summary = kwargs.get("help")
        if summary and "description" not in kwargs:
            kwargs["description"] = f"{summary[0].upper()}{summary[1:]}."
        return super().add_parser(name, **kwargs)


def catalog(args: argparse.Namespace, **how) -> Catalog:
    """The catalog a command works on (`--db`), opened as `how` says (read_only, create)."""
    return open_catalog(args.db, **how)


def print_report(report, as_json: bool, summary: str | None = None) -> int:
    """Problems to stderr, then one summary line (or the whole report as JSON)."""
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for problem in report.problems:
            print(f"  ! {problem}", file=sys.stderr)
        print(summary or report.summary())
    return 0 if report.ok else 1


def default_output(opened: Catalog, given: Path | None, stem: str) -> Path:
    """The file a command writes: `given`, else a new dated `<stem>_<YYYYmmdd-HHMMSS>.csv` in the
    catalog's own exports/ folder (data/catalog/exports/ for data/catalog.db; git ignores data/)."""
    if given is not None:
        return given
    return opened.exports_dir / f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}.csv"


MOST = 1_000_000_000  # the most any whole-number option takes, unless it names its own bound
MOST_K = 10_000  # results per query (-k, suggest -n)
MOST_TREES = 1_000  # Annoy trees (the default is 30; more only costs time and disk)
MOST_BATCH = 65_536  # photos per batch
MOST_EPOCHS = 100_000
MOST_DIM = 8_192  # a tuned head's vectors
MOST_WORKERS = 1_024  # Ray actors, server processes
MOST_VOTES = 1_000  # tune --votes


def _whole(text: str, least: int, most: int = MOST) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"needs a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"needs a whole number of at least {least}, got {value}")
    if value > most:
        raise argparse.ArgumentTypeError(f"needs a whole number of at most {most:,}, got {value}")
    return value


def whole(least: int, most: int):
    """argparse type: a whole number from `least` to `most` (checked before anything runs)."""

    def check(text: str) -> int:
        return _whole(text, least, most)

    check.__name__ = f"whole number from {least} to {most:,}"
    return check


def count(text: str) -> int:
    """argparse type: a whole number from 1 to MOST (limit, queries, ...)."""
    return _whole(text, 1)


def count_or_none(text: str) -> int:
    """argparse type: a whole number from 0 to MOST (0: none of it)."""
    return _whole(text, 0)


k_count = whole(1, MOST_K)
trees = whole(1, MOST_TREES)
batch_size = whole(1, MOST_BATCH)
epochs = whole(1, MOST_EPOCHS)
workers = whole(1, MOST_WORKERS)


def number(text: str, low: float, high: float = math.inf, low_included: bool = True) -> float:
    """A finite number from `low` to `high` (`low` itself only when `low_included`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"needs a number, got {text!r}") from None
    if not math.isfinite(value) or value > high or value < low or (value == low and not low_included):
        shown = f"{'of at least' if low_included else 'above'} {low:g}" + (
            f" and at most {high:g}" if high < math.inf else ""
        )
        raise argparse.ArgumentTypeError(f"needs a number {shown}, got {text!r}")
    return value


def similarity(text: str) -> float:
    """argparse type: a cosine similarity threshold above 0, at most 1."""
    return number(text, 0, 1, low_included=False)


def gpus(text: str) -> float:
    """argparse type: GPUs per Ray worker, 0 to 64."""
    return number(text, 0, 64)


def filter_argument(text: str) -> str:
    """argparse type: one KEY=VALUE filter that core.catalog.filters accepts."""
    from core.catalog.filters import parse_filters

    try:
        parse_filters([text])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def filter_option(p: argparse.ArgumentParser, what: str) -> None:
    """--filter KEY=VALUE, repeatable, checked at the edge; `what` says what a match keeps."""
    from core.catalog.filters import keys_help

    p.add_argument(
        "--filter",
        action="append",
        type=filter_argument,
        default=[],
        metavar="KEY=VALUE",
        help=f"{what}; repeat for several. Keys: {keys_help()}",
    )


def global_options(parser: argparse.ArgumentParser, given_only: bool = False) -> None:
    """--db, --json and -v. Accepted before the command (with defaults) and after it (`given_only`:
    an option not given after the command leaves the value from before it alone)."""

    def default(value):
        return argparse.SUPPRESS if given_only else value

    parser.add_argument(
        "--db",
        type=Path,
        default=default(settings().db),
        help="catalog database (default: $LOOKALIKE_DB or data/catalog.db)",
    )
    parser.add_argument("--json", action="store_true", default=default(False), help="print JSON for scripts")
    parser.add_argument("-v", "--verbose", action="store_true", default=default(False), help="log details to stderr")


def known_method(name: str, db_path: Path) -> str:
    """The method, when the registry or the catalog's tuned methods know it (UnknownMethod
    otherwise: one line, exit 2). The catalog is read only for a name that is not built in."""
    from core.methods import UnknownMethod, get_spec

    try:
        return get_spec(name).name
    except UnknownMethod as unknown:
        try:
            opened = open_catalog(db_path, read_only=True)
        except CatalogError:
            raise unknown from None
        try:
            return get_spec(name, opened).name
        finally:
            opened.conn.close()


def known_methods(text: str, db_path: Path) -> str | dict[str, float]:
    """'dino', or 'dino=0.7,color_hist=0.3' (fusion weights), every method known."""
    from core.search.fusion import parse_methods

    weights = parse_methods(text)
    if isinstance(weights, str):
        return known_method(weights, db_path)
    for name in weights:
        known_method(name, db_path)
    return weights


def method_option(p: argparse.ArgumentParser, check=known_method, **kwargs) -> None:
    """--method, checked against the registry before the command opens anything."""
    p.add_argument("--method", **kwargs)
    p.set_defaults(check_method=check)
