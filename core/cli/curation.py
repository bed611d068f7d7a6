"""Curation commands: labels (export, import), precision, export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.common import catalog, default_output, filter_option, k_count, method_option, print_report
from core.files.invisible import visible


def cmd_suggest(args: argparse.Namespace) -> int:
    from core.curation.suggest import suggest_queries

    found = suggest_queries(catalog(args, read_only=True, create=False), args.method, args.n)
    if args.json:
        print(json.dumps([s.as_dict() for s in found], indent=2))
        return 0
    print(f"label these queries next (where {args.method} is least sure of its look-alikes):")
    print(f"{'item':24} {'agreement':>9}  title")
    for s in found:
        print(f"{visible(s.item_id):24} {s.agreement:9.2f}  {visible(s.title or '')}")
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
    if not report.items and not report.duplicates and report.problems:  # nothing usable: an error, in one line
        first = report.problems[0]
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        where = "" if first.where == args.file.name else f"{first.where}: "
        raise ValueError(f"no label imported from {args.file.name}: {where}{first.reason}{more}")
    print_report(
        report,
        args.json,
        f"{report.items} new labels from {report.rows} rows "
        f"({report.duplicates} already present, {len(report.problems)} rejected)",
    )
    return 0 if report.items or not report.problems else 1


def cmd_precision(args: argparse.Namespace) -> int:
    from core.curation.metrics import evaluate_labels
    from core.search.space import open_space

    db = catalog(args, read_only=True)
    found = evaluate_labels(db, open_space(db, args.method) if args.method else None, args.k)
    if args.json:
        print(json.dumps(found.as_dict(), indent=2))
        return 0
    if not found.methods:
        print("no labels yet: label some search results first (Label page)")
        return 0
    print(
        f"{'rank':>4} {'method':24} {'P@k':>6} {'95% CI':>11} {'nDCG@k':>7} {'MRR':>6} "
        f"{'judged':>7} {'queries':>8} {'labels':>7} {'unknown':>8}"
    )
    for f in sorted(found.methods, key=lambda m: (m.rank is None, m.rank or 0, m.method)):
        p, ndcg, mrr = (
            "-" if v is None else f"{v:.3f}"
            for v in (f.figures.precision.value, f.figures.ndcg.value, f.figures.mrr.value)
        )
        interval = f"{f.figures.precision.low:.2f}-{f.figures.precision.high:.2f}"
        place = str(f.rank) if f.rank else "-"
        print(
            f"{place:>4} {f.method:24} {p:>6} {interval:>11} {ndcg:>7} {mrr:>6} {f.judged_share:>7.0%} "
            f"{f.figures.queries:>8} {f.figures.judged:>7} {f.figures.unknown:>8}"
            + ("" if f.comparable else "  not comparable")
        )
    print(f"rank: {found.ranking.rule()}")
    if found.ranking.not_comparable:
        print(f"{len(found.gap)} unjudged results would make them comparable: judge the gap on the Label page")
    print(f"verdict that counts: {found.verdict_rule}; a close match counts {found.scoring.close_share:g} of a hit")
    if found.agreement and found.agreement.statistic:
        a = found.agreement
        kappa = "-" if a.kappa is None else f"{a.kappa:.3f}"
        print(
            f"agreement ({'Cohen' if a.statistic == 'cohen' else 'Fleiss'}'s kappa) of {', '.join(a.raters)}: "
            f"{kappa} on {a.shared_pairs} shared pairs, {len(a.disagreements)} disagreements"
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
        raw=args.raw,
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
    p.add_argument(
        "action",
        choices=("export", "import", "suggest"),
        help="export: write every label to a CSV; import: merge a labels CSV; suggest: queries worth labelling next",
    )
    p.add_argument(
        "file",
        type=Path,
        nargs="?",
        help="the labels CSV; export's default: a new dated file in the catalog's exports/ (data/catalog/exports/)",
    )
    p.add_argument("-n", type=k_count, default=10, help="suggest: how many queries (default 10)")
    p.add_argument(
        "--method",
        default="efficientnet_lite0",
        help="suggest: the (learnt) method the labels should teach (default efficientnet_lite0)",
    )
    p.add_argument("--force", action="store_true", help="export: replace a file that is not a labels CSV")
    p.set_defaults(func=cmd_labels)

    p = sub.add_parser("precision", parents=[common], help="P@k, nDCG@k and MRR per method from labels, ranked fairly")
    method_option(p, help="just this method (default: every method with vectors or labels)")
    p.add_argument("-k", type=k_count, default=10, help="precision at this many results (default 10)")
    p.set_defaults(func=cmd_precision)

    p = sub.add_parser("export", parents=[common], help="similar-item CSV: every item and its curated top-k")
    method_option(p, required=True, help="the method whose look-alikes to export")
    p.add_argument("-k", type=k_count, default=10, help="look-alikes per item (default 10)")
    p.add_argument(
        "--out", type=Path, help="the CSV to write (default: a new dated file in the catalog's exports/ folder)"
    )
    filter_option(p, "export only items (and neighbours) that match")
    p.add_argument("--only-relevant", action="store_true", help="keep only pairs marked relevant")
    p.add_argument("--force", action="store_true", help="replace an existing file that is not an export CSV")
    p.add_argument("--raw", action="store_true", help="the model's lists untouched (default: the curated lists)")
    p.set_defaults(func=cmd_export)
