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


def cmd_labels(args: argparse.Namespace) -> int:
    from core.labels import export_labels, import_labels
    db = open_catalog(args.db)
    if args.action == "export":
        count = export_labels(db, args.file)
        print(json.dumps({"labels": count, "file": str(args.file)}) if args.json
              else f"{count} labels written to {args.file}")
        return 0
    report = import_labels(db, args.file)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for problem in report.problems:
            print(f"  ! {problem}", file=sys.stderr)
        print(f"{report.items} new labels from {report.rows} rows ({report.duplicates} already present, "
              f"{len(report.problems)} rejected)")
    return 0 if report.items or not report.problems else 1


def cmd_precision(args: argparse.Namespace) -> int:
    from core.metrics import precision_from_labels
    figures = precision_from_labels(open_catalog(args.db), args.method, args.k)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    if not figures:
        print("no labels yet: label some search results first (Label page)")
        return 0
    print(f"{'method':24} {'P@k':>6} {'95% CI':>13} {'queries':>8} {'labels':>7} {'unknown':>8} {'meta cat':>9}")
    for f in figures:
        p = "-" if f["precision_at_k"] is None else f"{f['precision_at_k']:.3f}"
        meta = f["metadata_precision"]["category"]
        print(f"{f['method']:24} {p:>6} {f['ci_low']:.2f}-{f['ci_high']:.2f}".ljust(45)
              + f"{f['queries']:>8} {f['labels']:>7} {f['unknown']:>8} "
              + ("-" if meta is None else f"{meta:.3f}").rjust(9))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.export import export_similar
    from core.filters import parse_filters
    rows = export_similar(open_catalog(args.db), args.method, args.k, args.out,
                          filters=parse_filters(args.filter), only_relevant=args.only_relevant)
    print(json.dumps({"rows": rows, "file": str(args.out)}) if args.json
          else f"{rows} rows written to {args.out}")
    return 0


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

    p = sub.add_parser("labels", parents=[common], help="export or import relevance labels as CSV")
    p.add_argument("action", choices=("export", "import"))
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_labels)

    p = sub.add_parser("precision", parents=[common], help="precision@k per method from labels")
    p.add_argument("--method")
    p.add_argument("-k", type=int, default=10)
    p.set_defaults(func=cmd_precision)

    p = sub.add_parser("export", parents=[common], help="similar-item CSV: every item and its top-k")
    p.add_argument("--method", required=True)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--only-relevant", action="store_true", help="keep only pairs marked relevant")
    p.set_defaults(func=cmd_export)
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
