"""Method commands: methods, embed, train-autoencoder, download-weights, index."""

from __future__ import annotations

import argparse
import json
import sys

from core.cli.common import batch_size, catalog, count, epochs, gpus, method_option, trees, workers
from core.methods.devices import add_device_argument
from core.settings import DEFAULT_METHOD


def cmd_methods(args: argparse.Namespace) -> int:
    from core.methods import backends, devices, list_methods
    from core.methods.registry import method_states

    found = catalog(args, read_only=True) if args.db.exists() else None
    if args.json:
        print(json.dumps([m.as_dict() for m in method_states(found)], indent=2))
        return 0
    methods = list_methods(found)
    for m in methods:
        print(f"{m.name:18} {m.kind:5} {m.state:12} {m.description}")
        if m.todo:
            print(f"{'':37}-> {m.todo}")
    print(
        "ready: searchable now; changed: searchable with the old vectors until embedded again; "
        "not embedded: can run here, embed it first; missing: needs weights or training"
    )
    placement = devices.summary()
    print(f"torch methods run on {devices.describe()}" if placement.device else f"torch methods: {placement.name}")
    print(f"CPU backend: {backends.describe()} ($LOOKALIKE_BACKEND, embed --precision)")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from core.engines.embed import embed_space
    from core.methods import backends, devices
    from core.search.space import open_space

    backends.select_precision(args.precision)
    space = open_space(catalog(args, create=False, needs_write=True), args.method)
    if space.runs_model and space.kind == "image":  # a bad LOOKALIKE_BACKEND / _PRECISION: one line, work or not
        backends.chosen()
        backends.precision()
    if args.engine == "ray":  # the device is the actors' (on the cluster's nodes), not this machine's
        from core.engines.ray_engine import embed_with_ray

        report = embed_with_ray(
            space,
            address=args.address,
            workers=args.workers,
            gpus_per_worker=args.gpus_per_worker,
            batch_size=args.batch_size,
            limit=args.limit,
            device=args.device,
            retry_failed=args.retry_failed,
            env=args.worker_env,
        )
    else:
        if args.device:  # checked now; LOOKALIKE_DEVICE only when a model is placed
            devices.select(args.device)
        report = embed_space(
            space,
            batch_size=args.batch_size,
            limit=args.limit,
            retry_failed=args.retry_failed,
        )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        why = "no current base vectors" if report.missing_parts else "unreadable"
        note = f"; {report.precision_note}" if report.precision_note else ""
        runs = f" ({report.backend}, {report.precision}{note})" if report.backend else ""
        print(
            f"{args.method}: {report.embedded} embedded, {report.failed} skipped ({why}), {report.rate:.1f} items/s"
            + (f" after {report.startup:.1f} s of start-up" if report.startup >= 0.05 else "")
            + runs
        )
        if report.unavailable:
            print(
                f"{report.unavailable} photos could not be read this time (missing file or I/O error); "
                "they are tried again on the next run",
                file=sys.stderr,
            )
    if report.missing_parts and not args.json:
        lacking = ", ".join(f"{part} ({n})" for part, n in report.missing_parts.items())
        print(
            f"{report.failed} items lack a vector of their current photo from {lacking}; embed the bases first: "
            + "; ".join(f"python -m core embed --method {part}" for part in report.missing_parts),
            file=sys.stderr,
        )
    return 0


def cmd_train_autoencoder(args: argparse.Namespace) -> int:
    from core.engines.autoencoder_training import train
    from core.methods import devices

    if args.device:  # checked now; LOOKALIKE_DEVICE only when a model is placed
        devices.select(args.device)
    losses = train(catalog(args, create=False, needs_write=True), epochs=args.epochs, batch_size=args.batch_size)
    print(
        json.dumps({"epochs": len(losses), "losses": losses})
        if args.json
        else f"autoencoder trained for {len(losses)} epochs; last loss {losses[-1]:.5f}"
    )
    return 0


def cmd_download_weights(args: argparse.Namespace) -> int:
    from core.methods import get_spec

    # the weights go beside an existing catalog; none is made for them (nor when the download fails)
    existing = catalog(args, read_only=True) if args.db.is_file() else None
    folder = get_spec(args.method).download(existing)
    print(f"{args.method}: weights saved in {folder}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from core.search.space import open_space

    space = open_space(catalog(args, create=False, needs_write=True), args.method)
    info = space.compact(trees=args.trees) if args.compact else space.build_index(trees=args.trees)
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
    method_option(p, default=DEFAULT_METHOD, help=f"the method to embed (default {DEFAULT_METHOD})")
    p.add_argument("--batch-size", type=batch_size, help="default: 32 on the CPU, what fits in memory on a GPU")
    p.add_argument("--limit", type=count, help="at most this many items (for a quick look)")
    add_device_argument(p)
    p.add_argument(
        "--precision",
        choices=("auto", "int8", "fp32"),
        help="auto (default): bfloat16 on CPUs that have it, int8 where checked (OpenVINO backend); "
        "int8: quantise on this catalog's photos, used only if it keeps the answers; fp32: float32 everywhere",
    )
    p.add_argument("--retry-failed", action="store_true", help="try again the photos recorded as undecodable")
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local (default): batches on this machine; ray: a Ray Data job (docs/scale.md)",
    )
    p.add_argument(
        "--address",
        help="Ray: auto = the cluster of this node (run on the head, or via `ray job submit`); "
        "default: a Ray on this machine. Ray Client (ray://) is not supported",
    )
    p.add_argument("--workers", type=workers, help="Ray: model actors (default: one per GPU, or cores / 4)")
    p.add_argument(
        "--gpus-per-worker",
        type=gpus,
        help="Ray: GPUs per model actor (default 1 when --device is cuda, or auto on a cluster with GPUs)",
    )
    p.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="Ray: an environment variable for the workers (e.g. HF_TOKEN, LOOKALIKE_MODELS=/mnt/models); "
        "paths and tokens are not sent otherwise",
    )
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("train-autoencoder", parents=[common], help="train (or resume) the catalog autoencoder")
    p.add_argument("--epochs", type=epochs, default=10, help="passes over the catalog's photos (default 10)")
    p.add_argument("--batch-size", type=batch_size, default=64, help="photos per training step (default 64)")
    add_device_argument(p)
    p.set_defaults(func=cmd_train_autoencoder)

    p = sub.add_parser("download-weights", parents=[common], help="fetch a hub model's weights (online)")
    p.add_argument("method", help="a hub method (vgg16, clip, dino, ...: `methods` lists them)")
    p.set_defaults(func=cmd_download_weights)

    p = sub.add_parser("index", parents=[common], help="build a method's Annoy index")
    method_option(p, required=True, help="the method whose vectors to index")
    p.add_argument("--trees", type=trees, help="default: 30, at most 1,000")
    p.add_argument(
        "--compact",
        action="store_true",
        help="fold what changed since the last build into a new one now (searches find changes without it; "
        "it happens by itself past LOOKALIKE_COMPACT_SHARE)",
    )
    p.set_defaults(func=cmd_index)
