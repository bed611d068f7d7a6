"""Catalog commands: import-farfetch, import-csv, sync, stats, demo, backup, migrate."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from core.catalog.columns import Columns
from core.cli.common import catalog, count, print_report


def cmd_import_farfetch(args: argparse.Namespace) -> int:
    from core.catalog.importers import import_farfetch

    report = import_farfetch(
        catalog(args, needs_write=True),
        args.csv,
        args.images,
        download=args.download,
        allow_private_hosts=args.allow_private_hosts,
    )
    return print_report(report, args.json)


COLUMN_FLAGS = ("id", "title", "category", "colour", "brand", "gender", "image", "description", "price")


def cmd_import_csv(args: argparse.Namespace) -> int:
    from core.catalog.importers import import_csv

    given = {flag: getattr(args, f"{flag}_col") for flag in COLUMN_FLAGS}
    columns = Columns(**{k: v for k, v in given.items() if v is not None})
    report = import_csv(catalog(args, needs_write=True), args.csv, args.images, columns)
    return print_report(report, args.json)


def cmd_sync(args: argparse.Namespace) -> int:
    from core.catalog.importers import Columns
    from core.engines.sync import sync_catalog

    given = {flag: getattr(args, f"{flag}_col") for flag in COLUMN_FLAGS}
    report = sync_catalog(
        catalog(args),
        args.csv,
        args.images,
        columns=Columns(**{k: v for k, v in given.items() if v is not None}),
        download=args.download,
        allow_private_hosts=args.allow_private_hosts,
        allow_mass_removal=args.allow_mass_removal,
        max_removal=args.max_removal,
        embed=not args.no_embed,
        methods=args.methods,
        progress=not args.json,
    )
    return print_report(report, args.json)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"needs a share between 0 and 1 (0.2 = 20%), got {text!r}")
    return value


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def cmd_stats(args: argparse.Namespace) -> int:
    from core.catalog.items import stats

    figures = stats(catalog(args, read_only=True))
    if args.json:
        print(json.dumps(asdict(figures), indent=2))
    else:
        print(f"items       {figures.items}" + (f" ({figures.gone} gone)" if figures.gone else ""))
        print(f"images ok   {figures.images_ok}")
        print(
            f"images bad  {figures.images_bad} (missing {figures.images_missing}, "
            f"unreadable {figures.images_unreadable})"
        )
        for method, count in sorted(figures.vectors.items()):
            print(f"vectors     {method}: {count}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from core.demo import DEMO_METHODS, setup_demo

    report = setup_demo(catalog(args, needs_write=True))
    print(f"demo catalog ready at {args.db}: {report.items} items, embedded and indexed with {', '.join(DEMO_METHODS)}")
    return 0 if report.ok else 1


def cmd_backup(args: argparse.Namespace) -> int:
    from core.catalog.backup import backup_catalog

    done = backup_catalog(args.db, args.dest, force=args.force, keep=args.keep)
    if args.json:
        print(json.dumps({"path": str(done.path), "bytes": done.bytes, "schema_version": done.schema_version}))
    else:
        print(done.summary())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from core.catalog.db import apply_migrations, schema_version

    db = catalog(args, create=False, needs_write=True, migrate=False)
    applied = apply_migrations(db)
    version = schema_version(db)
    if args.json:
        print(json.dumps({"schema_version": version, "applied": applied}))
    elif applied:
        print(f"upgraded {args.db} to schema version {version} (applied {', '.join(map(str, applied))})")
    else:
        print(f"{args.db} is at schema version {version}: nothing to do")
    return 0


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("import-farfetch", parents=[common], help="import a Farfetch listings CSV")
    p.add_argument("csv", type=Path, help="the Farfetch listings CSV")
    p.add_argument(
        "--images", type=Path, help="folder of photos named by URL basename (default: images/ beside the CSV)"
    )
    p.add_argument("--download", action="store_true", help="fetch missing photos first (online)")
    p.add_argument(
        "--allow-private-hosts",
        action="store_true",
        help="let --download fetch from loopback, link-local and private addresses",
    )
    p.set_defaults(func=cmd_import_farfetch)

    p = sub.add_parser("import-csv", parents=[common], help="import a generic product CSV")
    p.add_argument("csv", type=Path, help="the product CSV (one row per item)")
    p.add_argument("--images", type=Path, help="folder holding <id>.jpg/.png/.webp")
    defaults = Columns()
    for flag in COLUMN_FLAGS:
        default = getattr(defaults, flag)
        p.add_argument(
            f"--{flag}-col",
            dest=f"{flag}_col",
            metavar="COLUMN",
            help=f"the column of the item's {flag} (default: {default or 'none'})",
        )
    p.set_defaults(func=cmd_import_csv)

    p = sub.add_parser(
        "sync",
        parents=[common],
        help="sync a shop's feed: add and update its items, mark the ones it no longer lists gone, embed what changed",
        description="Import a feed (a Farfetch listings file or a product CSV, found from its header); items of "
        "its kind that it no longer lists are marked gone (kept with their labels, never returned), items it "
        "lists again are back. New and changed items are embedded with every method the catalog has vectors of "
        "and are searchable at once, without `index`. Exit 0: synced; 1: nothing in the feed could be "
        "imported; 2: refused (e.g. a mass removal) or failed. docs/scale.md#a-live-catalog shows a nightly timer.",
    )
    p.add_argument("csv", type=Path, help="the feed (CSV)")
    p.add_argument("--images", type=Path, help="folder of the feed's photos (as import-farfetch / import-csv)")
    p.add_argument("--download", action="store_true", help="Farfetch feeds: fetch missing photos first (online)")
    p.add_argument("--allow-private-hosts", action="store_true", help="let --download fetch from private addresses")
    p.add_argument(
        "--allow-mass-removal", action="store_true", help="apply a feed that removes more than --max-removal"
    )
    p.add_argument(
        "--max-removal",
        type=_share,
        default=0.2,
        help="the largest share of the catalog's items of the feed's kind it may remove (default: 0.2 = 20%%)",
    )
    p.add_argument("--no-embed", action="store_true", help="only sync the items; embed later (`embed`)")
    p.add_argument(
        "--methods", type=_names, metavar="A,B", help="embed with these methods (default: every one with vectors)"
    )
    for flag in COLUMN_FLAGS:
        p.add_argument(f"--{flag}-col", dest=f"{flag}_col", metavar="COLUMN", help="product CSVs: as import-csv")
    p.set_defaults(func=cmd_sync)
    _add_upkeep_commands(sub, common)


def _add_upkeep_commands(sub, common: argparse.ArgumentParser) -> None:
    """stats, demo, backup, migrate: keeping a catalog rather than filling it."""
    p = sub.add_parser("stats", parents=[common], help="catalog counts")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("demo", parents=[common], help="import, embed and index the demo catalog")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "backup",
        parents=[common],
        help="copy the catalog while the app and API keep using it (SQLite online backup, checked)",
        description="Copy the catalog (--db) to DEST while others read and write it: one consistent state, "
        "checked with PRAGMA integrity_check, then moved into place (the previous file stays whole until then). "
        "The catalog is not migrated: take one before an upgrade. docs/deploy.md#backups shows a nightly timer.",
    )
    p.add_argument("dest", help="the backup file, or a folder (ending in /) for <catalog>-<UTC time>.db")
    p.add_argument("--force", action="store_true", help="replace DEST when it exists")
    p.add_argument(
        "--keep",
        type=count,
        metavar="N",
        help="in a folder, keep only the N newest backups of this catalog (default: keep all)",
    )
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser(
        "migrate",
        parents=[common],
        help="upgrade the catalog's schema to this version's (what any writing command does on open)",
        description="Apply the schema steps this Lookalike has and the catalog lacks, each in one transaction, "
        "safe beside running readers and writers; says what it applied. The API opens catalogs read-only and "
        "refuses one that is not upgraded: run this after installing a new version (the systemd units do, "
        "docs/deploy.md#upgrading). Back up first: `backup`.",
    )
    p.set_defaults(func=cmd_migrate)
