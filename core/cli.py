"""`python -m core`: a thin command line over the library. Each command parses, calls, prints."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from core.config import default_db_path
from core.db import CatalogError, open_catalog

log = logging.getLogger("core")


def _print_report(report, as_json: bool) -> int:
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for problem in report.problems:
            print(f"  ! {problem}", file=sys.stderr)
        print(f"{report.items} items imported from {report.rows} rows; images ok {report.images_ok}, "
              f"not usable {report.images_bad}; {len(report.problems)} problem(s) reported")
    return 0 if report.ok else 1


def cmd_import_farfetch(args: argparse.Namespace) -> int:
    from core.importers import import_farfetch
    db = open_catalog(args.db)
    report = import_farfetch(db, args.csv, args.images, download=args.download)
    return _print_report(report, args.json)


def cmd_import_csv(args: argparse.Namespace) -> int:
    from core.importers import Columns, import_csv
    db = open_catalog(args.db)
    columns = Columns(**{k: v for k, v in {
        "id": args.id_col, "title": args.title_col, "category": args.category_col,
        "colour": args.colour_col, "brand": args.brand_col, "gender": args.gender_col,
        "image": args.image_col, "description": args.description_col, "price": args.price_col,
    }.items() if v is not None})
    report = import_csv(db, args.csv, args.images, columns)
    return _print_report(report, args.json)


def cmd_stats(args: argparse.Namespace) -> int:
    from core.importers import stats
    figures = stats(open_catalog(args.db))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"items       {figures['items']}")
        print(f"images ok   {figures['images_ok']}")
        print(f"images bad  {figures['images_bad']} (missing {figures['images_missing']}, "
              f"unreadable {figures['images_unreadable']})")
        for method, count in sorted(figures["vectors"].items()):
            print(f"vectors     {method}: {count}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from core.demo import DEFAULT_METHOD, setup_demo
    report = setup_demo(open_catalog(args.db))
    print(f"demo catalog ready at {args.db}: {report.items} items, embedded and indexed "
          f"with {DEFAULT_METHOD}")
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Lookalike catalog tools")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, default=default_db_path(),
                        help="catalog database (default: $LOOKALIKE_DB or data/catalog.db)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    common.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import-farfetch", parents=[common], help="import a Farfetch listings CSV")
    p.add_argument("csv", type=Path)
    p.add_argument("--images", type=Path, help="folder of photos named by URL basename "
                                               "(default: images/ beside the CSV)")
    p.add_argument("--download", action="store_true", help="fetch missing photos first (online)")
    p.set_defaults(func=cmd_import_farfetch)

    p = sub.add_parser("import-csv", parents=[common], help="import a generic product CSV")
    p.add_argument("csv", type=Path)
    p.add_argument("--images", type=Path, help="folder holding <id>.jpg/.png/.webp")
    for flag in ("id", "title", "category", "colour", "brand", "gender", "image", "description", "price"):
        p.add_argument(f"--{flag}-col", dest=f"{flag}_col", metavar="COLUMN")
    p.set_defaults(func=cmd_import_csv)

    p = sub.add_parser("stats", parents=[common], help="catalog counts")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("demo", parents=[common], help="import, embed and index the demo catalog")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (CatalogError, OSError, ValueError) as exc:
        log.debug("command failed", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; everything finished so far is saved", file=sys.stderr)
        return 130
