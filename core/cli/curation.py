"""Curation commands: labels (export, import), precision, export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.common import catalog, default_output, filter_option, k_count, method_option, print_report


def cmd_suggest(args: argparse.Namespace) -> int:
    from core.curation.suggest import suggest_queries

    found = suggest_queries(catalog(args, read_only=True, create=False), args.method, args.n)
    if args.json:
        print(json.dumps([s.as_dict() for s in found], indent=2))
        return 0
    print(f"label these queries next (where {args.method} is least sure of its look-alikes):")
    for s in found:
        print(f"{s.item_id:24} agreement {s.agreement:.2f}")
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    from core.curation.labels import export_labels, import_labels

    if args.action == "suggest":
        return cmd_suggest(args)
    db = catalog(args, create=False, **({"read_only": True} if args.action == "export" else {"needs_write": True}))
    if args.action == "export":
        out = default_output(db, args.file, "labels")
        written = export_labels(db, out, force=args.force)
        summary = (
            json.dumps({"labels": written, "file": str(out)}) if args.json else f"{written} labels written to {out}"
        )
        print(summary, file=_beside(out))
        return 0
    if args.file is None:
        raise ValueError("name the labels CSV to import: python -m core labels import FILE")
    report = import_labels(db, args.file)
    print_report(
        report,
        args.json,
        f"{report.items} new labels from {report.rows} rows "
        f"({report.duplicates} already present, {len(report.problems)} rejected)",
    )
    return 0 if report.items or not report.problems else 1


def cmd_precision(args: argparse.Namespace) -> int:
    from core.curation.metrics import precision_from_labels
    from core.search.space import open_space

    db = catalog(args, read_only=True)
    figures = precision_from_labels(db, open_space(db, args.method) if args.method else None, args.k)
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
        print(
            f"{f['method']:24} {p:>6} {f['ci_low']:.2f}-{f['ci_high']:.2f}".ljust(45)
            + f"{f['queries']:>8} {f['labels']:>7} {f['unknown']:>8} "
            + ("-" if meta is None else f"{meta:.3f}").rjust(9)
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.catalog.filters import parse_filters
    from core.curation.export import export_similar
    from core.search.space import open_space

    db = catalog(args, create=False)
    out = default_output(db, args.out, f"similar_{args.method}_top{args.k}")
    rows = export_similar(
        open_space(db, args.method),
        args.k,
        out,
        filters=parse_filters(args.filter),
        only_relevant=args.only_relevant,
        force=args.force,
    )
    print(
        json.dumps({"rows": rows, "file": str(out)}) if args.json else f"{rows} rows written to {out}",
        file=_beside(out),
    )
    return 0


def _beside(out: Path):
    """Where a command's summary goes: stdout, or stderr when the file itself went to stdout."""
    from core.files.atomic import descriptor_of

    return sys.stderr if descriptor_of(out) == 1 else sys.stdout


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "labels", parents=[common], help="export or import relevance labels as CSV; suggest queries to label"
    )
    p.add_argument("action", choices=("export", "import", "suggest"))
    p.add_argument(
        "file",
        type=Path,
        nargs="?",
        help="the labels CSV; export's default: a new dated file in the catalog's exports/ (data/catalog/exports/)",
    )
    p.add_argument("-n", type=k_count, default=10, help="suggest: how many queries (default 10)")
    p.add_argument(
        "--method", default="efficientnet_lite0", help="suggest: the (learnt) method the labels should teach"
    )
    p.add_argument("--force", action="store_true", help="export: replace a file that is not a labels CSV")
    p.set_defaults(func=cmd_labels)

    p = sub.add_parser("precision", parents=[common], help="precision@k per method from labels")
    method_option(p, help="just this method (default: every method with vectors or labels)")
    p.add_argument("-k", type=k_count, default=10)
    p.set_defaults(func=cmd_precision)

    p = sub.add_parser("export", parents=[common], help="similar-item CSV: every item and its top-k")
    method_option(p, required=True)
    p.add_argument("-k", type=k_count, default=10)
    p.add_argument(
        "--out", type=Path, help="the CSV to write (default: a new dated file in the catalog's exports/ folder)"
    )
    filter_option(p, "export only items (and neighbours) that match")
    p.add_argument("--only-relevant", action="store_true", help="keep only pairs marked relevant")
    p.add_argument("--force", action="store_true", help="replace an existing file that is not an export CSV")
    p.set_defaults(func=cmd_export)
