"""The tune command: learn a tuned method over base methods' stored vectors, print base against tuned."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from core.cli.common import MOST_DIM, MOST_VOTES, catalog, epochs, whole
from core.methods.devices import add_device_argument

if TYPE_CHECKING:
    from core.curation.tuning import TuneResult


def _bases(text: str) -> tuple[list[str], list[float] | None]:
    """'a,b' (equal weights) or 'a=0.7,b=0.3' -> (bases, weights or None)."""
    if "=" in text:
        from core.methods.hybrid import parse_weights

        weights = parse_weights(text)
        return list(weights), list(weights.values())
    return [name.strip() for name in text.split(",") if name.strip()], None


def _validation_table(result: TuneResult) -> list[str]:
    """Base vs tuned on the held-out items: P@10 per target (and jointly), then held-back labels."""

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [
        f"{'P@10 on held-out items':28} {'base':>7} {'tuned':>7}   {'whole catalog as gallery:':>26} "
        f"{'base':>7} {'tuned':>7}"
    ]
    for notion, m in result.metrics.items():
        lines.append(
            f"{notion:28} {cell(m.base_held_out):>7} {cell(m.tuned_held_out):>7}   {'':>26} "
            f"{cell(m.base_catalog):>7} {cell(m.tuned_catalog):>7}"
        )
    if (held := result.labels) is not None:
        lines.append(
            f"held-back labels ({held.pairs} pairs, {held.queries} queries): AUC {cell(held.base_auc)} -> "
            f"{cell(held.tuned_auc)}, judged P@10 {cell(held.base_judged_p10)} -> {cell(held.tuned_judged_p10)}"
        )
    return lines


def cmd_tune(args: argparse.Namespace) -> int:
    from core.curation import tuning
    from core.methods import devices

    if args.device:  # checked now; LOOKALIKE_DEVICE only when a model is placed
        devices.select(args.device)
    bases, weights = _bases(args.base)
    targets = [t.strip() for t in (args.target or "").split(",") if t.strip()]
    given = (("epochs", args.epochs), ("dim", args.dim), ("head", args.head), ("votes", args.votes))
    knobs = tuning.TuneOptions(**{k: v for k, v in given if v is not None}, catalog_fields=not args.no_fields)
    db = catalog(args, create=False, needs_write=True)
    result = tuning.tune(db, args.name, bases, targets, args.labels, weights, args.force, knobs)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0 if result.saved else 1
    print(
        f"{result.name} over {' + '.join(result.bases)}: {result.items_trained} items trained, "
        f"{result.items_validated} held out, {result.label_pairs_trained} label pairs; "
        f"best epoch {result.best_epoch} of {result.epochs}, {result.seconds:.1f}s"
    )
    print("\n".join(_validation_table(result)))
    for use, weighs in (("item", result.signal_weights.item), ("photo", result.signal_weights.photo)):
        print(f"{use} queries weigh: " + ", ".join(f"{signal} {w:.2f}" for signal, w in weighs.items()))
    print(
        f"saved as version {result.version}; next: python -m core embed --method {result.name}"
        if result.saved
        else result.reason
    )
    if result.saved and result.reason != "saved":
        print(result.reason)
    if result.saved:
        from core.search.space import open_space

        note = open_space(db, result.name).stale_note()  # re-tuned: the stored vectors are the old version's
        if note:
            print(note)
    return 0 if result.saved else 1


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("tune", parents=[common], help="learn a tuned method over base methods' stored vectors")
    p.add_argument("--name", required=True, help="the tuned method's name (not a built-in one's)")
    p.add_argument(
        "--base",
        required=True,
        metavar="M1[,M2,...]",
        help="base methods, already embedded: image methods and text ones (minilm, words); the base fusion's weights "
        "as efficientnet_lite0=0.5,color_hist=0.2,minilm=0.3 (default equal)",
    )
    p.add_argument("--target", metavar="ATTR[,ATTR...]", help="catalog fields whose shared values make items alike")
    p.add_argument("--labels", action="store_true", help="learn from relevance labels too")
    p.add_argument("--force", action="store_true", help="save even when worse than its base on held-out items")
    p.add_argument("--epochs", type=epochs, help="at most this many epochs (default 60)")
    p.add_argument("--dim", type=whole(1, MOST_DIM), help="size of the head's vectors (default 128)")
    p.add_argument(
        "--head",
        choices=["auto", "always", "never", "only"],
        help="the learnt head: kept where it helps (auto, the default), always, never (signal weights only), "
        "or only (the head alone)",
    )
    p.add_argument(
        "--votes",
        type=whole(0, MOST_VOTES),
        metavar="K",
        help="with --target: each item also matched by the target values of its K nearest trained items "
        "(default 20; 0: no votes)",
    )
    p.add_argument(
        "--no-fields", action="store_true", help="leave out the catalog's brand, gender and price as signals"
    )
    add_device_argument(p)
    p.set_defaults(func=cmd_tune)
