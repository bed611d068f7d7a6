"""Search commands: search, duplicates, evaluate."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from core.cli import snapshots
from core.cli.common import catalog, count, filter_option, k_count, known_methods, method_option, similarity
from core.files.invisible import visible
from core.settings import DEFAULT_METHOD


def cmd_search(args: argparse.Namespace) -> int:
    from core.catalog.filters import parse_filters
    from core.curation.curated import CuratedResult, curated_search
    from core.search.queries import SearchResult, search
    from core.search.space import open_space

    image = None
    if args.image:
        from core.catalog.images import MAX_UPLOAD_BYTES, read_file

        image = read_file(args.image, MAX_UPLOAD_BYTES)
    db = catalog(args, create=False)
    query = {
        "item_id": args.item,
        "image": image,
        "text": args.text,
        "k": args.k,
        "filters": parse_filters(args.filter),
    }
    result: SearchResult | CuratedResult
    if isinstance(args.method, dict):  # a fusion of methods: the models' list (curation works in one method's space)
        spaces = {open_space(db, name): w for name, w in args.method.items()}
        if args.distance:
            result = search(spaces, distance=args.distance, **query)
        else:
            result = curated_search(spaces, like=args.like, unlike=args.unlike, raw=args.raw, **query)
    elif args.distance:
        if args.like or args.unlike or not args.raw:
            raise ValueError("--distance ranks the model's list: add --raw (and leave out --like / --unlike)")
        result = search(open_space(db, args.method), distance=args.distance, **query)
    else:
        result = curated_search(open_space(db, args.method), like=args.like, unlike=args.unlike, raw=args.raw, **query)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    if result.results:
        print(f"{'#':>3} {'score':>8} {'why':8}  {'item':12} {'category':16} title")
    for hit in result.results:
        shown = [visible(text or "") for text in (hit.item_id, hit.category, hit.title)]
        reason = getattr(hit, "reason", "model")
        print(f"{hit.rank:3} {hit.score:8.4f} {reason:8}  {shown[0]:12} {shown[1]:16} {shown[2]}")
    for note in result.notes:  # stale vectors, filters that leave (almost) nothing
        print(f"note: {note}", file=sys.stderr)
    return 0


def cmd_duplicates(args: argparse.Namespace) -> int:
    from core.search.near_duplicates import find_duplicates
    from core.search.space import open_space

    pairs = find_duplicates(open_space(catalog(args, create=False), args.method), args.threshold)
    if args.json:
        print(json.dumps([p.as_dict() for p in pairs], indent=2))
        return 0
    for p in pairs:
        a, b, a_title, b_title = (visible(text or "") for text in (p.a, p.b, p.a_title, p.b_title))
        print(f"{p.similarity:.4f}  {a:12} {b:12} {a_title} | {b_title}")
    print(f"{len(pairs)} pairs at similarity >= {args.threshold}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.curation.evaluate import evaluate
    from core.search.space import open_space

    if args.method is None:
        raise ValueError("evaluate needs --method (or a subcommand: snapshot, diff, check)")
    space = open_space(catalog(args, read_only=True), args.method)
    result = evaluate(space, args.attribute, args.k, args.queries, distance=args.distance)
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print(
            f"{args.method}: P@{args.k} {result.precision_at_k:.4f}, mAP@{args.k} {result.map_at_k:.4f} "
            f"by {args.attribute} over {result.queries} queries"
        )
    return 0


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common], help="items most like an item, a photo or a text")
    method_option(
        p,
        known_methods,
        default=DEFAULT_METHOD,
        help=f"a method (default {DEFAULT_METHOD}), or several fused with weights: dino=0.7,color_hist=0.3",
    )
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--item", help="catalog item id")
    group.add_argument("--image", type=Path, help="a photo file")
    group.add_argument("--text", help="words (minilm, words, clip, fashion_clip)")
    p.add_argument("-k", type=k_count, default=10, help="how many look-alikes to print (default 10)")
    filter_option(p, "keep only results that match")
    p.add_argument(
        "--distance",
        choices=("cosine", "chi2"),
        help="rank by this instead of the method's own distance (chi2: colour histograms; with --raw)",
    )
    p.add_argument("--like", action="append", default=[], metavar="ID", help="steer toward this item (repeatable)")
    p.add_argument(
        "--unlike", action="append", default=[], metavar="ID", help="steer away from this item, and leave it out"
    )
    p.add_argument("--raw", action="store_true", help="the model's list untouched: no pins, verdicts, hides or rules")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("duplicates", parents=[common], help="near-duplicate listings")
    method_option(p, default=DEFAULT_METHOD, help=f"the method whose vectors to compare (default {DEFAULT_METHOD})")
    p.add_argument(
        "--threshold", type=similarity, default=0.95, help="cosine similarity above 0, at most 1 (default 0.95)"
    )
    p.set_defaults(func=cmd_duplicates)

    p = sub.add_parser(
        "evaluate",
        parents=[common],
        help="precision@k of a method against an attribute; snapshots of its results: snapshot, diff, check",
    )
    method_option(p, help="the method to measure (required without a snapshot subcommand)")
    p.add_argument(
        "--attribute", default="articleType", help="a result is right when it shares this field (default articleType)"
    )
    p.add_argument("-k", type=k_count, default=10, help="results per query (default 10)")
    p.add_argument("--queries", type=count, help="a seeded sample of N queries (default: every item)")
    p.add_argument("--distance", choices=("cosine", "chi2"), default="cosine", help="rank by (default cosine)")
    p.set_defaults(func=cmd_evaluate)
    snapshots.add_commands(p, common)
