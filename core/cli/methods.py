"""Method commands: methods, embed, train-autoencoder, download-weights, index."""

from __future__ import annotations

import argparse
import json
import sys

from core.cli.common import catalog, count, gpus, method_option
from core.methods.devices import add_device_argument
from core.settings import DEFAULT_METHOD


def cmd_methods(args: argparse.Namespace) -> int:
    from core.methods import devices, list_methods

    methods = list_methods(catalog(args, read_only=True) if args.db.exists() else None)
    device = devices.resolve()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        **{k: m[k] for k in ("name", "kind", "available", "reason")},
                        "device": device if m["runs_model"] else "cpu",
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
            catalog(args, create=False),
            args.method,
            address=args.address,
            workers=args.workers,
            gpus_per_worker=args.gpus_per_worker,
            batch_size=args.batch_size,
            limit=args.limit,
        )
    else:
        report = embed_catalog(catalog(args, create=False), args.method, batch_size=args.batch_size, limit=args.limit)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        why = "no current base vectors" if report.missing_parts else "unreadable"
        print(f"{args.method}: {report.embedded} embedded, {report.failed} skipped ({why}), {report.rate:.1f} items/s")
    if report.missing_parts and not args.json:
        lacking = ", ".join(f"{part} ({n})" for part, n in report.missing_parts.items())
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
    losses = train(catalog(args, create=False), epochs=args.epochs, batch_size=args.batch_size)
    print(
        json.dumps({"epochs": len(losses), "losses": losses})
        if args.json
        else f"autoencoder trained for {len(losses)} epochs; last loss {losses[-1]:.5f}"
    )
    return 0


def cmd_download_weights(args: argparse.Namespace) -> int:
    from core.methods import get_spec

    folder = get_spec(args.method).download(catalog(args))
    print(f"{args.method}: weights saved in {folder}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from core.search.space import open_space

    info = open_space(catalog(args, create=False), args.method).build_index(trees=args.trees)
    print(
        json.dumps(vars(info), indent=2)
        if args.json
        else f"{args.method}: {info.items} items, {info.trees} trees, built in {info.build_seconds:.1f}s"
    )
    return 0


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("methods", parents=[common], help="every feature-extraction method and its state")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("embed", parents=[common], help="compute missing or outdated vectors of a method")
    method_option(p, default=DEFAULT_METHOD)
    p.add_argument("--batch-size", type=count, help="default: 32 on the CPU, what fits in memory on a GPU")
    p.add_argument("--limit", type=count, help="at most this many items (for a quick look)")
    add_device_argument(p)
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="ray: a Ray Data job (docs/scale.md)")
    p.add_argument("--address", help="Ray cluster: auto or ray://HOST:10001 (default: a Ray on this machine)")
    p.add_argument("--workers", type=count, help="Ray: model actors (default: one per GPU, or cores / 4)")
    p.add_argument("--gpus-per-worker", type=gpus, default=0, help="Ray: GPUs per model actor (0: CPU actors)")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("train-autoencoder", parents=[common], help="train (or resume) the catalog autoencoder")
    p.add_argument("--epochs", type=count, default=10)
    p.add_argument("--batch-size", type=count, default=64)
    add_device_argument(p)
    p.set_defaults(func=cmd_train_autoencoder)

    p = sub.add_parser("download-weights", parents=[common], help="fetch a hub model's weights (online)")
    p.add_argument("method")
    p.set_defaults(func=cmd_download_weights)

    p = sub.add_parser("index", parents=[common], help="build a method's Annoy index")
    method_option(p, required=True)
    p.add_argument("--trees", type=count, help="default: 30")
    p.set_defaults(func=cmd_index)
