"""What a tuning run learns from: its options, checked names and bases, the stable hash split, the
bases' vectors, the catalog-field signals, target classes, judged pairs, and which rows train.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np

from core.catalog.db import Catalog
from core.curation.evaluate import joint_values
from core.methods.distances import normalised_weights, unit, weighted_concat
from core.methods.field_signals import field_parts, field_values, vocabularies
from core.methods.heads import HeadError, stored_bases

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class TuneError(ValueError):
    """Input that cannot be tuned on, in one line."""


@dataclass(frozen=True)
class TuneOptions:
    """Head size and training knobs (the defaults are the ones benchmarks/tune_bench.py validated)."""

    dim: int = 128
    temperature: float = 0.2
    target_decay: float = 0.5  # each target alone is a task too, weighted 0.5, 0.25, ... in order
    anchor: float = 1e-3  # L2 pull of the map towards its start (targets)
    label_anchor: float = 1e-2  # ... when labels are used: they only speak about near neighbours
    random_negatives: int = 256  # unjudged training items added to each label batch as negatives
    query_batch: int = 64
    epochs: int = 60
    label_epochs: int = 30  # labels alone (no targets): the head trains min(epochs, label_epochs), no early stop
    patience: int = 6
    batch_size: int = 256
    learning_rate: float = 1e-3
    validation: float = 0.2
    inner: float = 0.1
    seed: int = 0
    candidates: int = 20  # per signal: each fields query's best candidates that make weight-fitting pairs
    pair_negatives: int = 20  # random unjudged items per query, as not relevant, when fitting weights
    weight_decay: float = 1e-3  # L2 penalty of the pairwise weight fit
    photo_floor: float = 0.02  # least item weight of a photo signal (so its block exists)
    catalog_fields: bool = True  # same brand, same gender, price ratio signals, where the catalog has them
    votes: int = 20  # fields: each item's nearest labelled training items whose fields vote (0: no votes signal)
    vote_temperature: float = 0.05
    vote_dim: int = 128  # an image base's votes are found among its top principal directions
    voters: int = 20_000  # at most this many labelled training items vote (a random draw beyond)
    head: str = "auto"  # "auto": kept when the inner check says it helps (labels alone: when the weights
    # give it a share); "always"; "never" (weights only);
    # "only": the head alone (no other signal, photos through it too)

    def __post_init__(self) -> None:
        if self.dim < 1 or self.epochs < 1:
            raise TuneError("the head's size (dim) and its epochs must be at least 1")
        if self.head not in ("auto", "always", "never", "only"):
            raise TuneError(f"head must be auto, always, never or only, not {self.head!r}")


def check_name(name: str) -> None:
    """A tuned name is a lower-case identifier that no built-in method uses."""
    from core.methods import list_methods

    if not NAME_PATTERN.match(name or ""):
        raise TuneError(f"tuned method name {name!r} must be 2-40 characters: a-z first, then a-z, 0-9 or _")
    if name in {m.name for m in list_methods()}:
        raise TuneError(f"{name!r} is a built-in method; choose another name for the tuned one")


def check_bases(bases: list[str]) -> tuple[list[str], list[str]]:
    """Bases are built-in image or text methods, at least one of them an image method (tuned ones are
    not bases: a learnt method over another would chain versions). Returns (kinds, metrics) per base."""
    from core.methods import UnknownMethod, get_spec

    if not bases:
        raise TuneError("name at least one base method")
    if len(set(bases)) != len(bases):
        raise TuneError("name each base method once")
    specs = []
    for base in bases:
        try:
            specs.append(get_spec(base))
        except UnknownMethod:
            raise TuneError(f"base {base!r} is not a built-in method; `python -m core methods` lists them") from None
    if not any(spec.kind == "image" for spec in specs):
        raise TuneError("name at least one image method among the bases (photos and items are searched by it)")
    return [spec.kind for spec in specs], [spec.metric for spec in specs]


def is_validation(item_id: str, fraction: float = 0.2, salt: str = "") -> bool:
    """Stable split: the first 32 bits of sha1(salt + id) below `fraction` of their range."""
    digest = hashlib.sha1((salt + str(item_id)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") < fraction * 2**32


def judged_pairs(db: Catalog) -> list[tuple[str, str, int]]:
    """(query item, candidate item, relevant) for the latest verdict of each labeller on each item pair."""
    return [
        tuple(r)
        for r in db.execute(
            "SELECT query_key, candidate_id, relevant FROM ("
            " SELECT query_key, candidate_id, relevant, row_number() OVER ("
            "  PARTITION BY query_key, candidate_id, labeler ORDER BY created_at DESC, id DESC) AS n"
            " FROM labels WHERE query_kind = 'item') WHERE n = 1 ORDER BY query_key, candidate_id"
        )
    ]


def class_codes(values: list[tuple | None]) -> np.ndarray:
    """Integer class per item (-1 when a value is missing)."""
    codes: dict = {}
    return np.array([-1 if v is None else codes.setdefault(v, len(codes)) for v in values], dtype=np.int64)


@dataclass
class TuneData:
    ids: list[str]
    bases: list[str]
    kinds: list[str]
    dims: list[int]
    parts: dict[str, np.ndarray]  # base -> raw vectors (zeros: an item without that text)
    weights: list[float]  # the base fusion's weights, per base
    x: np.ndarray  # the head's input (every base's weighted concatenation)
    notions: dict[str, np.ndarray]  # target(s) -> class per item (-1: value missing)
    joint: str | None  # the notion whose classes are the positives
    pairs: np.ndarray  # (query row, candidate row, relevant)
    validation: np.ndarray  # bool per item
    inner: np.ndarray  # bool per item: training items kept for early stopping and choices
    fields: dict[str, list[str]] = field(default_factory=dict)  # catalog-field signal -> known values (parts too)

    @property
    def joint_classes(self) -> np.ndarray:
        """The joint notion's class per item (-1: a value missing); only when learnt from targets."""
        if self.joint is None:
            raise TuneError("learnt without targets: no classes")
        return self.notions[self.joint]

    @property
    def image_bases(self) -> list[str]:
        return [b for b, k in zip(self.bases, self.kinds) if k == "image"]

    def base_space(self) -> np.ndarray:
        """The untuned fusion: every base's unit vectors, weighted."""
        return unit(weighted_concat([self.parts[b] for b in self.bases], self.weights))


def fusion_weights(bases: list[str], weights: list[float] | None) -> list[float]:
    weights = list(weights) if weights else [1.0] * len(bases)
    if len(weights) != len(bases):
        raise TuneError("base weights must be one number per base")
    try:
        return list(normalised_weights(dict(zip(bases, weights))).values())
    except ValueError as exc:
        raise TuneError(f"base weights: {exc}") from None


def _label_rows(db: Catalog, ids: list[str], validation: np.ndarray) -> np.ndarray:
    row = {item_id: n for n, item_id in enumerate(ids)}
    pairs = np.array(
        [(row[q], row[c], r) for q, c, r in judged_pairs(db) if q in row and c in row and q != c], dtype=np.int64
    ).reshape(-1, 3)
    if not (~validation[pairs[:, 0]] & ~validation[pairs[:, 1]]).any():
        raise TuneError("no relevance labels between training items with vectors; label some results first")
    return pairs


def gather(
    db: Catalog,
    bases: list[str],
    kinds: list[str],
    weights: list[float],
    targets: list[str],
    use_labels: bool,
    options: TuneOptions,
) -> TuneData:
    """Base vectors, target classes, label pairs and the hash splits, checked for usable input."""
    if not targets and not use_labels:
        raise TuneError("nothing to learn from: give targets (catalog fields) and/or use labels")
    try:
        ids, parts = stored_bases(db, bases, kinds)
    except HeadError as exc:
        raise TuneError(str(exc)) from None
    validation = np.array([is_validation(i, options.validation) for i in ids], dtype=bool)
    inner = np.array([is_validation(i, options.inner, salt="inner:") for i in ids], dtype=bool) & ~validation
    _check_enough(len(ids), int(validation.sum()), int(inner.sum()))
    notions: dict[str, np.ndarray] = {}
    for target in targets:
        notions[target] = class_codes(joint_values(db, ids, [target]))
        distinct = len(set(notions[target][~validation]) - {-1})
        if distinct < 2:
            raise TuneError(
                f"target {target!r} has {distinct} distinct value(s) among training items with vectors; "
                "it needs at least two"
            )
    joint = ",".join(targets) if targets else None
    if joint is not None and len(targets) > 1:
        notions[joint] = class_codes(joint_values(db, ids, targets))
    pairs = _label_rows(db, ids, validation) if use_labels else np.zeros((0, 3), dtype=np.int64)
    dims = [parts[b].shape[1] for b in bases]
    data = TuneData(ids, bases, kinds, dims, parts, weights, np.zeros(0), notions, joint, pairs, validation, inner)
    data.x = weighted_concat([parts[b] for b in bases], weights)  # every base feeds the head, text too
    if options.catalog_fields:
        values = field_values(db, ids)
        data.fields = vocabularies(values, np.where(~validation)[0])
        data.parts |= field_parts(values, data.fields)
    return data


MIN_PART_ITEMS = 2  # items each part of the split (held out, inner check, learnt from) needs at least


def _check_enough(items: int, held_out: int, inner: int) -> None:
    """TuneError, before any work, when the catalog is too small to split into its three parts."""
    learnt = items - held_out - inner
    if min(held_out, inner, learnt) < MIN_PART_ITEMS:
        raise TuneError(
            f"too few items to tune on: {items} with vectors of every base, split by id into {held_out} held out "
            f"for validation, {inner} for the inner check and {learnt} to learn from; each part needs at least "
            f"{MIN_PART_ITEMS} (a catalog of about 50 items or more)"
        )


@dataclass
class Plan:
    """Which rows and pairs the head trains on, and which the inner check keeps."""

    train_rows: np.ndarray
    inner_rows: np.ndarray
    fit_rows: np.ndarray
    item_rows: np.ndarray  # fit rows with every target value
    fit_pairs: np.ndarray
    inner_pairs: np.ndarray
    label_queries: np.ndarray
    used: np.ndarray  # rows the head learnt from or was checked on


def training_plan(data: TuneData) -> Plan:
    train = ~data.validation
    fit = train & ~data.inner
    item_rows = np.where(fit & (data.joint_classes >= 0))[0] if data.notions else np.zeros(0, np.int64)
    usable = train[data.pairs[:, 0]] & train[data.pairs[:, 1]]
    fit_pairs = data.pairs[usable & ~data.inner[data.pairs[:, 0]]]
    inner_pairs = data.pairs[usable & data.inner[data.pairs[:, 0]]]
    inner_rows = np.where(data.inner)[0]
    used = np.union1d(np.union1d(item_rows, fit_pairs[:, :2].ravel()), inner_rows)
    label_queries = np.unique(fit_pairs[fit_pairs[:, 2] == 1, 0])
    return Plan(
        np.where(train)[0], inner_rows, np.where(fit)[0], item_rows, fit_pairs, inner_pairs, label_queries, used
    )
