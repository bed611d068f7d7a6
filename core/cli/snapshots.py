"""`evaluate snapshot | diff | check`: freeze a method's top k, compare two snapshots, check a method
against one (exit 1 when it got worse by more than allowed: for a nightly job or CI)."""

from __future__ import annotations

import argparse
import json

from core.cli.common import Commands, catalog, count, k_count, method_option, number


def cmd_snapshot(args: argparse.Namespace) -> int:
    from core.curation.snapshots import snapshot_figures, take_snapshot
    from core.search.space import open_space

    db = catalog(args, create=False)
    taken = take_snapshot(open_space(db, args.method), args.name, args.k, replace=args.replace)
    figures = snapshot_figures(db, taken)
    if args.json:
        print(json.dumps({"name": taken.name, "method": taken.method, "k": taken.k, **figures.as_dict()}, indent=2))
        return 0
    ndcg = "-" if figures.ndcg.value is None else f"{figures.ndcg.value:.3f}"
    print(
        f"snapshot {taken.name}: {taken.method}'s top {taken.k} for {len(taken.lists)} judged queries (nDCG@k {ndcg})"
    )
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from core.curation.snapshots import diff_snapshots

    found = diff_snapshots(catalog(args, read_only=True), args.first, args.second)
    if args.json:
        print(json.dumps(found.as_dict(), indent=2))
        return 0
    for title, changes in (("better", found.better), ("worse", found.worse)):
        print(f"{len(changes)} queries {title} in {found.second.name} (nDCG@k):")
        for c in changes[: args.limit]:
            print(f"  {c.query_key:24} {c.before:.3f} -> {c.after:.3f} ({c.change:+.3f})")
    print(f"{found.unchanged} queries unchanged; {len(found.unjudged)} new results nobody has judged (Label page)")
    for snapshot, figures in zip((found.first, found.second), found.totals):
        values = [figures.precision.value, figures.ndcg.value, figures.mrr.value]
        shown = " ".join("-" if v is None else f"{v:.3f}" for v in values)
        print(f"{snapshot.name:24} {snapshot.method:20} P@k nDCG@k MRR: {shown}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from core.curation.snapshots import check_against
    from core.search.space import open_space

    db = catalog(args, read_only=True)
    result = check_against(open_space(db, args.method), args.baseline, args.max_drop, args.measure)
    print(json.dumps(result.as_dict()) if args.json else result.line())
    return 1 if result.worse else 0


def drop(text: str) -> float:
    return number(text, 0.0, 1.0)


def add_commands(evaluate: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """The snapshot subcommands of `evaluate` (which alone still measures a method by an attribute)."""
    sub = evaluate.add_subparsers(
        action=Commands,
        dest="evaluate_action",
        metavar="{snapshot,diff,check}",
        help="snapshots of a method's results (optional)",
    )
    p = sub.add_parser("snapshot", parents=[common], help="freeze a method's top k for every judged query")
    method_option(p, required=True, help="the method whose results to freeze")
    p.add_argument("--name", required=True, help="the snapshot's name")
    p.add_argument("-k", type=k_count, default=10, help="results kept per query (default 10)")
    p.add_argument("--replace", action="store_true", help="replace a snapshot of that name")
    p.set_defaults(func=cmd_snapshot)

    p = sub.add_parser("diff", parents=[common], help="queries better or worse (nDCG@k) from one snapshot to another")
    p.add_argument("first", help="the earlier snapshot's name")
    p.add_argument("second", help="the later snapshot's name")
    p.add_argument("--limit", type=count, default=20, help="queries listed per direction (default 20)")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("check", parents=[common], help="exit 1 when a method is worse than a snapshot")
    method_option(p, required=True, help="the method to compare with the snapshot")
    p.add_argument("--baseline", required=True, help="the snapshot to compare with")
    p.add_argument("--max-drop", type=drop, default=0.02, help="the drop allowed (default 0.02)")
    p.add_argument(
        "--measure", choices=("ndcg", "precision", "mrr"), default="ndcg", help="the measure compared (default ndcg)"
    )
    p.set_defaults(func=cmd_check)
