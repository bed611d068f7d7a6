"""`python -m core`: a thin command line over the library. Each command parses, calls, prints."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sqlite3
import sys
from pathlib import Path
from typing import NoReturn

from core.catalog.db import CatalogError, open_catalog
from core.files import failures
from core.methods.devices import add_device_argument
from core.settings import DEFAULT_METHOD, settings

log = logging.getLogger("core")


def _print_report(report, as_json: bool, summary: str | None = None) -> int:
    """Problems to stderr, then one summary line (or the whole report as JSON)."""
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for problem in report.problems:
            print(f"  ! {problem}", file=sys.stderr)
        print(
            summary
            or f"{report.items} items imported from {report.rows} rows; images ok {report.images_ok}, "
            f"not usable {report.images_bad}; {len(report.problems)} problem(s) reported"
        )
    return 0 if report.ok else 1


def cmd_import_farfetch(args: argparse.Namespace) -> int:
    from core.catalog.importers import import_farfetch

    db = open_catalog(args.db)
    report = import_farfetch(
        db, args.csv, args.images, download=args.download, allow_private_hosts=args.allow_private_hosts
    )
    return _print_report(report, args.json)


def cmd_import_csv(args: argparse.Namespace) -> int:
    from core.catalog.importers import Columns, import_csv

    db = open_catalog(args.db)
    columns = Columns(
        **{
            k: v
            for k, v in {
                "id": args.id_col,
                "title": args.title_col,
                "category": args.category_col,
                "colour": args.colour_col,
                "brand": args.brand_col,
                "gender": args.gender_col,
                "image": args.image_col,
                "description": args.description_col,
                "price": args.price_col,
            }.items()
            if v is not None
        }
    )
    report = import_csv(db, args.csv, args.images, columns)
    return _print_report(report, args.json)


def cmd_stats(args: argparse.Namespace) -> int:
    from core.catalog.items import stats

    figures = stats(open_catalog(args.db, read_only=True))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"items       {figures['items']}")
        print(f"images ok   {figures['images_ok']}")
        print(
            f"images bad  {figures['images_bad']} (missing {figures['images_missing']}, "
            f"unreadable {figures['images_unreadable']})"
        )
        for method, count in sorted(figures["vectors"].items()):
            print(f"vectors     {method}: {count}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from core.demo import setup_demo

    report = setup_demo(open_catalog(args.db))
    print(f"demo catalog ready at {args.db}: {report.items} items, embedded and indexed with {DEFAULT_METHOD}")
    return 0 if report.ok else 1


def cmd_labels(args: argparse.Namespace) -> int:
    from core.curation.labels import export_labels, import_labels

    db = open_catalog(args.db, read_only=args.action == "export", create=False)
    if args.action == "export":
        count = export_labels(db, args.file, force=args.force)
        print(
            json.dumps({"labels": count, "file": str(args.file)})
            if args.json
            else f"{count} labels written to {args.file}"
        )
        return 0
    report = import_labels(db, args.file)
    _print_report(
        report,
        args.json,
        f"{report.items} new labels from {report.rows} rows "
        f"({report.duplicates} already present, {len(report.problems)} rejected)",
    )
    return 0 if report.items or not report.problems else 1


def cmd_precision(args: argparse.Namespace) -> int:
    from core.curation.metrics import precision_from_labels

    figures = precision_from_labels(open_catalog(args.db, read_only=True), args.method, args.k)
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

    rows = export_similar(
        open_catalog(args.db, create=False),
        args.method,
        args.k,
        args.out,
        filters=parse_filters(args.filter),
        only_relevant=args.only_relevant,
        force=args.force,
    )
    print(json.dumps({"rows": rows, "file": str(args.out)}) if args.json else f"{rows} rows written to {args.out}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from core.methods import devices, list_methods

    methods = list_methods(open_catalog(args.db, read_only=True) if args.db.exists() else None)
    device = devices.resolve()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        **{k: m[k] for k in ("name", "kind", "available", "reason")},
                        "device": devices.method_device(m["family"], device),
                        **{k: m[k] for k in ("bases", "training") if k in m},
                    }
                    for m in methods
                ],
                indent=2,
            )
        )
        return 0
    for m in methods:
        state = "ready" if m["available"] else "missing"
        print(f"{m['name']:18} {m['kind']:5} {state:7} {m['description']}")
        if m["reason"]:
            print(f"{'':32}-> {m['reason']}")
    print(f"torch methods run on {devices.describe()}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from core.engines.embed import embed_catalog
    from core.methods import devices

    devices.select(args.device)
    if args.engine == "ray":
        from core.engines.ray_engine import embed_with_ray

        report = embed_with_ray(
            open_catalog(args.db, create=False),
            args.method,
            address=args.address,
            workers=args.workers,
            gpus_per_worker=args.gpus_per_worker,
            batch_size=args.batch_size,
            limit=args.limit,
        )
    else:
        report = embed_catalog(
            open_catalog(args.db, create=False), args.method, batch_size=args.batch_size, limit=args.limit
        )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        why = "no current base vectors" if report.missing_parts else "unreadable"
        print(f"{args.method}: {report.embedded} embedded, {report.failed} skipped ({why}), {report.rate:.1f} items/s")
    if report.missing_parts and not args.json:
        lacking = ", ".join(f"{part} ({count})" for part, count in report.missing_parts.items())
        print(
            f"{report.failed} items lack a vector of their current photo from {lacking}; embed the bases first: "
            + "; ".join(f"python -m core embed --method {part}" for part in report.missing_parts),
            file=sys.stderr,
        )
    return 0


def cmd_train_autoencoder(args: argparse.Namespace) -> int:
    from core.methods import devices
    from core.methods.autoencoder import train

    devices.select(args.device)
    losses = train(open_catalog(args.db, create=False), epochs=args.epochs, batch_size=args.batch_size)
    print(
        json.dumps({"epochs": len(losses), "losses": losses})
        if args.json
        else f"autoencoder trained for {len(losses)} epochs; last loss {losses[-1]:.5f}"
    )
    return 0


def cmd_download_weights(args: argparse.Namespace) -> int:
    from core.methods import get_spec

    folder = get_spec(args.method).download(open_catalog(args.db))
    print(f"{args.method}: weights saved in {folder}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.curation.evaluate import evaluate

    result = evaluate(
        open_catalog(args.db, read_only=True), args.method, args.attribute, args.k, args.queries, distance=args.distance
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{args.method}: P@{args.k} {result['precision_at_k']:.4f}, mAP@{args.k} {result['map_at_k']:.4f} "
            f"by {args.attribute} over {result['queries']} queries"
        )
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from core.search.index import build_index

    info = build_index(open_catalog(args.db, create=False), args.method, trees=args.trees)
    print(
        json.dumps(vars(info), indent=2)
        if args.json
        else f"{args.method}: {info.items} items, {info.trees} trees, built in {info.build_seconds:.1f}s"
    )
    return 0


def _known_method(name: str, db_path: Path) -> str:
    """The method, when the registry or the catalog's tuned methods know it (UnknownMethod
    otherwise: one line, exit 2). The catalog is read only for a name that is not built in."""
    from core.methods import UnknownMethod, get_spec

    try:
        return get_spec(name).name
    except UnknownMethod as unknown:
        try:
            catalog = open_catalog(db_path, read_only=True)
        except CatalogError:
            raise unknown from None
        try:
            return get_spec(name, catalog).name
        finally:
            catalog.conn.close()


def _known_methods(text: str, db_path: Path) -> str | dict[str, float]:
    """'dino', or 'dino=0.7,color_hist=0.3' (fusion weights), every method known."""
    if "=" not in text:
        return _known_method(text, db_path)
    from core.methods.hybrid import parse_weights

    weights = parse_weights(text)
    for name in weights:
        _known_method(name, db_path)
    return weights


def _bases(text: str) -> tuple[list[str], list[float] | None]:
    """'a,b' (equal weights) or 'a=0.7,b=0.3' -> (bases, weights or None)."""
    if "=" in text:
        from core.methods.hybrid import parse_weights

        weights = parse_weights(text)
        return list(weights), list(weights.values())
    return [name.strip() for name in text.split(",") if name.strip()], None


def _validation_table(metrics: dict) -> list[str]:
    """Base vs tuned on the held-out items: P@10 per target (and jointly), then held-back labels."""

    def cell(value) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [
        f"{'P@10 on held-out items':28} {'base':>7} {'tuned':>7}   {'whole catalog as gallery:':>26} "
        f"{'base':>7} {'tuned':>7}"
    ]
    for notion, m in metrics.items():
        if notion != "labels":
            lines.append(
                f"{notion:28} {cell(m['base_held_out']):>7} {cell(m['tuned_held_out']):>7}   {'':>26} "
                f"{cell(m['base_catalog']):>7} {cell(m['tuned_catalog']):>7}"
            )
    if "labels" in metrics:
        m = metrics["labels"]
        lines.append(
            f"held-back labels ({m['pairs']} pairs, {m['queries']} queries): AUC {cell(m['base_auc'])} -> "
            f"{cell(m['tuned_auc'])}, judged P@10 {cell(m['base_judged_p10'])} -> {cell(m['tuned_judged_p10'])}"
        )
    return lines


def cmd_tune(args: argparse.Namespace) -> int:
    from core.curation import tuning
    from core.methods import devices

    devices.select(args.device)
    bases, weights = _bases(args.base)
    targets = [t.strip() for t in (args.target or "").split(",") if t.strip()]
    knobs = tuning.TuneOptions(
        **{k: v for k, v in (("epochs", args.epochs), ("dim", args.dim), ("head", args.head)) if v is not None}
    )
    result = tuning.tune(
        open_catalog(args.db, create=False), args.name, bases, targets, args.labels, weights, args.force, knobs
    )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(
            f"{result.name} over {' + '.join(result.bases)}: {result.items_trained} items trained, "
            f"{result.items_validated} held out, {result.label_pairs_trained} label pairs; "
            f"best epoch {result.best_epoch} of {result.epochs}, {result.seconds:.1f}s"
        )
        print("\n".join(_validation_table(result.metrics)))
        for use, weights in result.signal_weights.items():
            print(f"{use} queries weigh: " + ", ".join(f"{signal} {w:.2f}" for signal, w in weights.items()))
        print(
            f"saved as version {result.version}; next: python -m core embed --method {result.name}"
            if result.saved
            else result.reason
        )
        if result.saved and result.reason != "saved":
            print(result.reason)
    return 0 if result.saved else 1


def cmd_search(args: argparse.Namespace) -> int:
    from core.catalog.filters import parse_filters
    from core.search.queries import search

    image = None
    if args.image:
        from core.catalog.images import MAX_UPLOAD_BYTES, read_file

        image = read_file(args.image, MAX_UPLOAD_BYTES)
    result = search(
        open_catalog(args.db, create=False),
        args.method,
        item_id=args.item,
        image=image,
        text=args.text,
        k=args.k,
        filters=parse_filters(args.filter),
        distance=args.distance,
    )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    for hit in result.results:
        print(f"{hit.rank:3} {hit.score:8.4f}  {hit.item_id:12} {hit.category or '':16} {hit.title or ''}")
    return 0


def cmd_duplicates(args: argparse.Namespace) -> int:
    from core.search.near_duplicates import find_duplicates

    pairs = find_duplicates(open_catalog(args.db, create=False), args.method, args.threshold)
    if args.json:
        print(json.dumps([p.as_dict() for p in pairs], indent=2))
        return 0
    for p in pairs:
        print(f"{p.similarity:.4f}  {p.a:12} {p.b:12} {p.a_title or ''} | {p.b_title or ''}")
    print(f"{len(pairs)} pairs at similarity >= {args.threshold}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in one line, like every other error of the command line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _count(text: str) -> int:
    """argparse type: a whole number of at least 1 (k, trees, batch size, limit, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"needs a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs a whole number of at least 1, got {value}")
    return value


def _number(text: str, low: float, high: float = math.inf, low_included: bool = True) -> float:
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


def _similarity(text: str) -> float:
    """argparse type: a cosine similarity threshold above 0, at most 1."""
    return _number(text, 0, 1, low_included=False)


def _gpus(text: str) -> float:
    """argparse type: GPUs per Ray worker, 0 or more."""
    return _number(text, 0)


def _filter(text: str) -> str:
    """argparse type: one KEY=VALUE filter that core.catalog.filters accepts."""
    from core.catalog.filters import parse_filters

    try:
        parse_filters([text])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _global_options(parser: argparse.ArgumentParser, given_only: bool = False) -> None:
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


def _method_option(p: argparse.ArgumentParser, check=_known_method, **kwargs) -> None:
    """--method, checked against the registry before the command opens anything."""
    p.add_argument("--method", **kwargs)
    p.set_defaults(check_method=check)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="Lookalike catalog tools")
    _global_options(parser)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, given_only=True)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import-farfetch", parents=[common], help="import a Farfetch listings CSV")
    p.add_argument("csv", type=Path)
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
    p.add_argument("csv", type=Path)
    p.add_argument("--images", type=Path, help="folder holding <id>.jpg/.png/.webp")
    for flag in ("id", "title", "category", "colour", "brand", "gender", "image", "description", "price"):
        p.add_argument(f"--{flag}-col", dest=f"{flag}_col", metavar="COLUMN")
    p.set_defaults(func=cmd_import_csv)

    p = sub.add_parser("stats", parents=[common], help="catalog counts")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("demo", parents=[common], help="import, embed and index the demo catalog")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("methods", parents=[common], help="every feature-extraction method and its state")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("embed", parents=[common], help="compute missing or outdated vectors of a method")
    _method_option(p, default=DEFAULT_METHOD)
    p.add_argument("--batch-size", type=_count, help="default: 32 on the CPU, what fits in memory on a GPU")
    p.add_argument("--limit", type=_count, help="at most this many items (for a quick look)")
    add_device_argument(p)
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="ray: a Ray Data job (docs/scale.md)")
    p.add_argument("--address", help="Ray cluster: auto or ray://HOST:10001 (default: a Ray on this machine)")
    p.add_argument("--workers", type=_count, help="Ray: model actors (default: one per GPU, or cores / 4)")
    p.add_argument("--gpus-per-worker", type=_gpus, default=0, help="Ray: GPUs per model actor (0: CPU actors)")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("train-autoencoder", parents=[common], help="train (or resume) the catalog autoencoder")
    p.add_argument("--epochs", type=_count, default=10)
    p.add_argument("--batch-size", type=_count, default=64)
    add_device_argument(p)
    p.set_defaults(func=cmd_train_autoencoder)

    p = sub.add_parser("tune", parents=[common], help="learn a tuned method over base methods' stored vectors")
    p.add_argument("--name", required=True, help="the tuned method's name (not a built-in one's)")
    p.add_argument(
        "--base",
        required=True,
        metavar="M1[,M2,...]",
        help="base methods, already embedded: image methods and text ones (minilm); the base fusion's weights "
        "as efficientnet_lite0=0.5,color_hist=0.2,minilm=0.3 (default equal)",
    )
    p.add_argument("--target", metavar="ATTR[,ATTR...]", help="catalog fields whose shared values make items alike")
    p.add_argument("--labels", action="store_true", help="learn from relevance labels too")
    p.add_argument("--force", action="store_true", help="save even when worse than its base on held-out items")
    p.add_argument("--epochs", type=_count, help="at most this many epochs (default 60)")
    p.add_argument("--dim", type=_count, help="size of the head's vectors (default 128)")
    p.add_argument(
        "--head",
        choices=["auto", "always", "never", "only"],
        help="the learnt head: kept where it helps (auto, the default), always, never (signal weights only), "
        "or only (the head alone)",
    )
    add_device_argument(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("download-weights", parents=[common], help="fetch a hub model's weights (online)")
    p.add_argument("method")
    p.set_defaults(func=cmd_download_weights)

    p = sub.add_parser("evaluate", parents=[common], help="precision@k of a method against an attribute")
    _method_option(p, required=True)
    p.add_argument("--attribute", default="articleType")
    p.add_argument("-k", type=_count, default=10)
    p.add_argument("--queries", type=_count, help="a seeded sample of N queries (default: every item)")
    p.add_argument("--distance", choices=("cosine", "chi2"), default="cosine")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("index", parents=[common], help="build a method's Annoy index")
    _method_option(p, required=True)
    p.add_argument("--trees", type=_count, help="default: 30")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", parents=[common], help="items most like an item, a photo or a text")
    _method_option(p, _known_methods, default=DEFAULT_METHOD, help="a method, or weights: dino=0.7,color_hist=0.3")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--item", help="catalog item id")
    group.add_argument("--image", type=Path, help="a photo file")
    group.add_argument("--text", help="words (minilm, clip, fashion_clip)")
    p.add_argument("-k", type=_count, default=10)
    p.add_argument("--filter", action="append", type=_filter, default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--distance",
        choices=("cosine", "chi2"),
        help="rank by this instead of the method's own distance (chi2: colour histograms)",
    )
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("duplicates", parents=[common], help="near-duplicate listings")
    _method_option(p, default=DEFAULT_METHOD)
    p.add_argument(
        "--threshold", type=_similarity, default=0.95, help="cosine similarity above 0, at most 1; e.g. 0.95"
    )
    p.set_defaults(func=cmd_duplicates)

    p = sub.add_parser("labels", parents=[common], help="export or import relevance labels as CSV")
    p.add_argument("action", choices=("export", "import"))
    p.add_argument("file", type=Path)
    p.add_argument("--force", action="store_true", help="export: replace a file that is not a labels CSV")
    p.set_defaults(func=cmd_labels)

    p = sub.add_parser("precision", parents=[common], help="precision@k per method from labels")
    p.add_argument("--method")
    p.add_argument("-k", type=_count, default=10)
    p.set_defaults(func=cmd_precision)

    p = sub.add_parser("export", parents=[common], help="similar-item CSV: every item and its top-k")
    _method_option(p, required=True)
    p.add_argument("-k", type=_count, default=10)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--filter", action="append", type=_filter, default=[], metavar="KEY=VALUE")
    p.add_argument("--only-relevant", action="store_true", help="keep only pairs marked relevant")
    p.add_argument("--force", action="store_true", help="replace an existing file that is not an export CSV")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a bad argument already told in one line
        return int(stop.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if getattr(args, "check_method", None):
            args.method = args.check_method(args.method, args.db)
        return args.func(args)
    except (CatalogError, OSError, ValueError, RuntimeError, sqlite3.Error, MemoryError) as exc:
        log.info("command failed", exc_info=True)  # the details, shown with -v
        print(f"error: {failures.one_line(exc, args.db)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; everything finished so far is saved", file=sys.stderr)
        return 130
