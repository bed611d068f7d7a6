"""Curation commands: `curate pin/unpin/hide/unhide/rule/list/history/undo/export/import`."""

from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path

from core.cli.common import Commands, catalog, count, default_output, print_report


def default_author() -> str:
    """Who makes a change when `--by` is not given: the signed-in user's name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "command line"


def _print(changes, as_json: bool, empty: str) -> None:
    if as_json:
        print(json.dumps([c.as_dict() for c in changes], indent=2))
        return
    if not changes:
        print(empty)
    for c in changes:
        value = "removed" if c.value is None else ("at " + c.value if c.kind == "pin" else c.value)
        undone = f" (undoes #{c.undoes})" if c.undoes else ""
        print(f"#{c.id:<5} {c.subject():40} {value:10} by {c.author} at {c.created_at}{undone}")


def cmd_curate(args: argparse.Namespace) -> int:
    from core.curation import decisions

    action = args.action
    db = catalog(args, read_only=action in ("list", "history", "export"), create=False)
    if action == "list":
        _print(decisions.in_force(db), args.json, "no pins, hides or rules")
        return 0
    if action == "history":
        _print(decisions.history(db), args.json, "no curation changes yet")
        return 0
    if action == "export":
        out = default_output(db, args.file, "curation")
        written = decisions.export_curation(db, out, force=args.force)
        print(
            json.dumps({"changes": written, "file": str(out)}) if args.json else f"{written} changes written to {out}"
        )
        return 0
    if action == "import":
        report = decisions.import_curation(db, args.file)
        summary = f"{report.items} new changes from {report.rows} rows ({report.duplicates} already present, "
        print_report(report, args.json, summary + f"{len(report.problems)} rejected)")
        return 0 if report.items or not report.problems else 1
    changes = {
        "pin": lambda: decisions.pin(db, args.item, args.candidate, args.position, args.by),
        "unpin": lambda: decisions.unpin(db, args.item, args.candidate, args.by),
        "hide": lambda: decisions.hide(db, args.item, args.by),
        "unhide": lambda: decisions.unhide(db, args.item, args.by),
        "rule": lambda: decisions.set_rule(db, args.name, args.value, args.by),
        "undo": lambda: decisions.undo(db, args.change, args.by),
    }
    _print([changes[action]()], args.json, "")
    return 0


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "curate", parents=[common], help="pins, hides and rules that shape every look-alike list the shop gets"
    )
    actions = p.add_subparsers(dest="action", required=True, action=Commands, help="what to change or show")
    by = argparse.ArgumentParser(add_help=False)
    by.add_argument("--by", default=default_author(), help="who makes the change (default: your user name)")

    a = actions.add_parser("pin", parents=[common, by], help="put CANDIDATE at place N of ITEM's list")
    a.add_argument("item", help="the catalog item whose list it is")
    a.add_argument("candidate", help="the item to put in that list")
    a.add_argument("--position", type=count, default=1, help="its place, 1 = first (default 1)")
    a = actions.add_parser("unpin", parents=[common, by], help="take a pin away")
    a.add_argument("item", help="the catalog item whose list it is")
    a.add_argument("candidate", help="the pinned item")
    a = actions.add_parser("hide", parents=[common, by], help="keep ITEM out of every list")
    a.add_argument("item", help="the catalog item to hide")
    a = actions.add_parser("unhide", parents=[common, by], help="let a hidden item back into lists")
    a.add_argument("item", help="the hidden catalog item")
    a = actions.add_parser(
        "rule",
        parents=[common, by],
        help="set a catalog-wide rule: same_gender on, same_category on, in_stock on, price_ratio R, "
        "max_per_brand N, diversity L (0-1); VALUE off removes it",
    )
    a.add_argument("name", help="same_gender, same_category, in_stock, price_ratio, max_per_brand or diversity")
    a.add_argument("value", help="on, a number, or off to remove the rule")
    actions.add_parser("list", parents=[common], help="every pin, hide and rule in force, with who and when")
    actions.add_parser("history", parents=[common], help="every change, oldest first")
    a = actions.add_parser("undo", parents=[common, by], help="reverse a change (default: the latest)")
    a.add_argument("change", type=count, nargs="?", help="its number (#) in `curate history`")
    a = actions.add_parser("export", parents=[common], help="write the curation history as CSV")
    a.add_argument("file", type=Path, nargs="?", help="default: a new dated file in the catalog's exports/")
    a.add_argument("--force", action="store_true", help="replace a file that is not a curation CSV")
    a = actions.add_parser("import", parents=[common], help="merge a curation CSV's history")
    a.add_argument("file", type=Path, help="a CSV that `curate export` wrote")
    p.set_defaults(func=cmd_curate)
