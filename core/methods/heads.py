"""Learnt methods' storage and application: weighted signals plus an optional learnt head (NumPy only).

A learnt (tuned) method scores a pair of items by a weighted sum of cosine similarities, one per
*signal*: each base method's vectors (image methods, and text methods such as `minilm`), the
catalog-field signals (core/methods/field_signals.py) and, when one was learnt and it helps, a
*head* (a linear map of its bases' weighted concatenation, L2-normalised: every base, titles' text
included, in methods learnt since text bases took part; the image bases alone in older ones) and
its *votes* (`Votes`: the field values of the nearest items it learnt from). Its catalog vector
is the concatenation of each signal's unit vector scaled by √weight, so one cosine (one Annoy
index) gives the weighted sum; a signal an item lacks (no title, no brand) is a zero block. An
uploaded photo has only image signals: its vector fills the image blocks with the *photo weights*
(divided by √item weight, so the dot product is the photo-weighted sum) and leaves the others zero.

Training lives in core/curation/tuning.py; this module only stores, reads and applies what it
learnt, so the methods registry never reaches up into curation. Rows of `tuned_methods`:
`base_weights` holds the signal weights as JSON `{"item": {...}, "photo": {...}, "kinds": [...],
"head_input": [...], "head_bases": [...], "votes": [...], "fields": {...}}` (the voters' vectors and
values are arrays in the `head` bytes; without "head_bases": the image bases; rows written
before signals existed hold a JSON list: the head's input weights, and the head is their only
signal).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np

from core.catalog.db import Catalog, writing
from core.catalog.vectors import load_matrix, missing_vectors
from core.methods import field_signals
from core.methods.distances import unit, weighted_concat

HEAD = "head"  # the signal name of the learnt head
VOTES = "votes"  # the signal name of the labelled neighbours' fields in the head's space (see Votes)


def votes_signal(source: str) -> str:
    """The signal name of the votes found in `source`'s space: the head's, or an image base's."""
    return VOTES if source == HEAD else f"{VOTES}_{source}"


class HeadError(ValueError):
    """A learnt method that cannot be read or applied, in one line."""


@dataclass
class Votes:
    """The catalog items a method learnt from, in one space, with their field values (class codes): an
    item's votes are the values of its `k` nearest of them, weighted by softmax(cosine / temperature),
    one distribution per notion (joint targets, then each target), square-rooted and weighted, so two
    items' votes agree as much as their neighbourhoods' fields do. Items whose own fields are blank
    (new listings, other shops' items) are matched by what their labelled look-alikes are. The space
    is the head's, or an image base's reduced by `projection` (its top principal directions)."""

    vectors: np.ndarray  # (voters, space dim) unit float32
    classes: np.ndarray  # (voters, notions) int64 class codes
    sizes: list[int]  # classes per notion
    weights: list[float]  # each notion's weight
    k: int = 20
    temperature: float = 0.05
    source: str = HEAD  # the signal whose unit vectors are looked up: the head, or an image base
    projection: np.ndarray | None = None  # (source dim, space dim): from the source to the space

    @property
    def dim(self) -> int:
        return int(sum(self.sizes))

    def settings(self) -> dict:
        """What a row stores as JSON (the arrays go with the head's)."""
        return {
            "sizes": self.sizes,
            "weights": self.weights,
            "k": self.k,
            "temperature": self.temperature,
            "source": self.source,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """What a row stores with the head's arrays, by name."""
        name = votes_signal(self.source)
        found: dict[str, np.ndarray] = {
            f"{name}.voters": self.vectors.astype(np.float32),
            f"{name}.classes": self.classes.astype(np.int64),
        }
        if self.projection is not None:
            found[f"{name}.projection"] = self.projection.astype(np.float32)
        return found

    @classmethod
    def stored(cls, arrays, settings: dict) -> Votes:
        """The votes a row stored (see `settings` and `arrays`)."""
        name = votes_signal(settings["source"])
        projection = arrays[f"{name}.projection"] if f"{name}.projection" in arrays else None
        return cls(arrays[f"{name}.voters"], arrays[f"{name}.classes"], **settings, projection=projection)

    def __call__(self, sources: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """Unit vote vectors of these unit source vectors (`chunk` rows at a time)."""
        if len(sources) > chunk:
            return np.vstack([self(sources[n : n + chunk]) for n in range(0, len(sources), chunk)])
        points = sources if self.projection is None else unit(sources @ self.projection)
        sims = points @ self.vectors.T
        k = min(self.k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        near = np.take_along_axis(sims, top, axis=1)
        share = np.exp((near - near.max(axis=1, keepdims=True)) / self.temperature)
        share /= share.sum(axis=1, keepdims=True)
        rows = np.repeat(np.arange(len(points)), k)
        blocks = []
        for notion, size in enumerate(self.sizes):
            votes = np.zeros((len(points), size), np.float32)
            np.add.at(votes, (rows, self.classes[top, notion].ravel()), share.ravel())
            blocks.append(np.sqrt(votes))
        return unit(weighted_concat(blocks, self.weights))


@dataclass
class Head:
    """A saved learnt method: its bases, the weight of each signal, and the head's map (if any)."""

    name: str
    version: int
    bases: list[str]
    head_input: list[float]  # weights of the head's bases in its input
    dims: list[int]
    projection: np.ndarray | None  # (sum of the head bases' dims, head dim) float32, or None: no head
    kinds: list[str] = field(default_factory=list)  # "image" / "text" per base
    item: dict[str, float] = field(default_factory=dict)  # signal -> weight for item queries (sum 1)
    photo: dict[str, float] = field(default_factory=dict)  # signal -> weight for photo queries
    head_bases: list[str] = field(default_factory=list)  # the bases in the head's input (default: image bases)
    votes: list[Votes] = field(default_factory=list)  # the items it learnt from, per space (learnt from fields)
    fields: dict[str, list[str]] = field(default_factory=dict)  # catalog-field signal -> its known values

    def __post_init__(self) -> None:
        self.kinds = self.kinds or ["image"] * len(self.bases)
        self.head_bases = self.head_bases or self.image_bases
        if not self.item:
            self.item = {HEAD: 1.0} if self.projection is not None else {b: 1 / len(self.bases) for b in self.bases}
        if not self.photo:
            self.photo = {s: w for s, w in self.item.items() if s == HEAD or self.kind(s) == "image"}

    @property
    def image_bases(self) -> list[str]:
        return [b for b, k in zip(self.bases, self.kinds) if k == "image"]

    def kind(self, signal: str) -> str:
        if signal in self.fields:
            return "field"
        return "image" if signal in (HEAD, *self.voting) else self.kinds[self.bases.index(signal)]

    @property
    def voting(self) -> dict[str, Votes]:
        """Each votes signal's votes."""
        return {votes_signal(v.source): v for v in self.votes}

    @property
    def signals(self) -> list[str]:
        """The signals that make the vector, in block order (those with a positive item weight)."""
        return [s for s in [*self.bases, *self.fields, HEAD, *self.voting] if self.item.get(s, 0) > 0]

    def project(self, head_input: np.ndarray) -> np.ndarray:
        """Unit head vectors from the head's input (see `weighted_concat`)."""
        return unit(head_input @ self.projection)

    def blocks(self, parts: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Each signal's unit vectors from the bases' vectors and field signals (one absent from `parts`: zeros)."""
        known = [*self.bases, *self.fields]
        found = {s: unit(np.atleast_2d(np.asarray(parts[s], dtype=np.float32))) for s in known if s in parts}
        sizes = {
            **dict(zip(self.bases, self.dims)),
            **{s: field_signals.size(s, self.fields) for s in self.fields},
            HEAD: 0 if self.projection is None else self.projection.shape[1],
            **{name: votes.dim for name, votes in self.voting.items()},
        }
        voting = {name: votes for name, votes in self.voting.items() if name in self.signals}
        if HEAD in self.signals or any(votes.source == HEAD for votes in voting.values()):
            if any(b not in found for b in self.image_bases):
                raise HeadError(f"{self.name}: its head needs {', '.join(self.image_bases)}")
            inputs = [found.get(b, np.zeros((rows, sizes[b]), np.float32)) for b in self.head_bases]
            found[HEAD] = self.project(weighted_concat(inputs, self.head_input))
        for name, votes in voting.items():
            if votes.source in found:
                found[name] = votes(found[votes.source])
        return {s: found.get(s, np.zeros((rows, sizes[s]), np.float32)) for s in self.signals}

    def vectors(self, parts: dict[str, np.ndarray], photo: bool = False) -> np.ndarray:
        """Item vectors (every signal the items have) or photo query vectors (image signals, photo weights)."""
        rows = len(np.atleast_2d(next(iter(parts.values()))))
        blocks = self.blocks(parts, rows)
        if not photo:
            return np.hstack([np.sqrt(self.item[s]) * blocks[s] for s in self.signals]).astype(np.float32)
        return np.hstack([self.photo.get(s, 0.0) / np.sqrt(self.item[s]) * blocks[s] for s in self.signals]).astype(
            np.float32
        )

    @property
    def dim(self) -> int:
        return int(self.vectors({b: np.ones((1, d), np.float32) for b, d in zip(self.bases, self.dims)}).shape[1])

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        arrays = {"dims": np.asarray(self.dims, dtype=np.int64), "weights": np.asarray(self.head_input, np.float64)}
        if self.projection is not None:
            arrays["projection"] = self.projection.astype(np.float32)
        for votes in self.votes:
            arrays |= votes.arrays()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy: **arrays might hold allow_pickle
        return buffer.getvalue()

    def weights_json(self) -> str:
        return json.dumps(
            {
                "item": self.item,
                "photo": self.photo,
                "kinds": self.kinds,
                "head_input": self.head_input,
                "head_bases": self.head_bases,
                **({"votes": [votes.settings() for votes in self.votes]} if self.votes else {}),
                **({"fields": self.fields} if self.fields else {}),
            }
        )

    @classmethod
    def from_row(cls, row: dict) -> Head:
        signals = json.loads(row["base_weights"]) if row.get("base_weights") else []
        if isinstance(signals, list):  # a row from before signals: the head is the only signal
            signals = {}
        with np.load(io.BytesIO(row["head"]), allow_pickle=False) as arrays:
            projection = arrays["projection"].astype(np.float32) if "projection" in arrays else None
            head_input, dims = arrays["weights"].tolist(), arrays["dims"].tolist()
            votes = [Votes.stored(arrays, settings) for settings in signals.get("votes", [])]
        return cls(
            row["name"],
            row["version"],
            json.loads(row["bases"]),
            head_input,
            dims,
            projection,
            signals.get("kinds", []),
            signals.get("item", {}),
            signals.get("photo", {}),
            signals.get("head_bases", []),
            votes,
            signals.get("fields", {}),
        )


# --- storage ---------------------------------------------------------------------------------


def latest_rows(db: Catalog, name: str | None = None) -> list[dict]:
    """The current (latest saved) version's row of every tuned method, or of just `name`, by name."""
    return list(
        db.query(
            "SELECT * FROM tuned_methods t WHERE version = (SELECT max(version) FROM tuned_methods WHERE name = t.name)"
            + (" AND name = ?" if name is not None else "")
            + " ORDER BY name",
            [] if name is None else [name],
        )
    )


def current_head(db: Catalog, name: str) -> Head | None:
    """The latest saved version of a tuned method, or None."""
    rows = latest_rows(db, name)
    return Head.from_row(rows[0]) if rows else None


def tuned_names(db: Catalog) -> dict[str, int]:
    """Tuned method name -> its current version."""
    return dict(db.execute("SELECT name, max(version) FROM tuned_methods GROUP BY name").fetchall())


def save_head(db: Catalog, head: Head, targets: list[str], uses_labels: bool, record: dict) -> int:
    """Store `head` as the next version of its name (with its training record); return that version."""
    with writing(db) as conn:  # the next version read and taken under one lock: two tunings never share one
        version = conn.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM tuned_methods WHERE name = ?", [head.name]
        ).fetchone()[0]
        record = {**record, "version": version, "saved": True}
        conn.execute(
            "INSERT INTO tuned_methods (name, version, bases, base_weights, targets, uses_labels, dim, head, record) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                head.name,
                version,
                json.dumps(head.bases),
                head.weights_json(),
                json.dumps(targets),
                int(uses_labels),
                head.dim,
                head.to_bytes(),
                json.dumps(record),
            ),
        )
    return version


# --- a catalog's learnt vectors from its stored base vectors ------------------------------------


def stored_bases(db: Catalog, bases: list[str], kinds: list[str]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Items having a vector of every image base, and each base's matrix in that item order
    (a text base's rows are zeros for items without text)."""
    loaded = {base: load_matrix(db, base) for base in bases}
    for base, (ids, _) in loaded.items():
        if not ids:
            raise HeadError(missing_vectors(base))
    image = [b for b, k in zip(bases, kinds) if k == "image"] or bases
    ids = sorted(set(loaded[image[0]][0]).intersection(*(set(loaded[b][0]) for b in image[1:])))
    parts = {}
    for base, (base_ids, matrix) in loaded.items():
        row = {item_id: n for n, item_id in enumerate(base_ids)}
        part = np.zeros((len(ids), matrix.shape[1]), np.float32)
        have = [n for n, i in enumerate(ids) if i in row]
        part[have] = matrix[[row[ids[n]] for n in have]]
        parts[base] = part
    return ids, parts


def head_vectors(db: Catalog, name: str) -> tuple[list[str], np.ndarray, list[str]]:
    """Every item's learnt vector from the stored base vectors: (ids, matrix, ids lacking an image base)."""
    head = current_head(db, name)
    if head is None:
        raise HeadError(f"no tuned method {name!r}; run `python -m core tune --name {name} --base ...` first")
    ids, parts = stored_bases(db, head.bases, head.kinds)
    parts |= field_signals.catalog_parts(db, ids, head.fields)
    if any(parts[b].shape[1] != d for b, d in zip(head.bases, head.dims)):
        raise HeadError(
            f"the stored vectors of {', '.join(head.bases)} changed size since {name} was tuned; tune it again"
        )
    have = set(ids)
    missing = [i for (i,) in db.execute("SELECT id FROM items ORDER BY id") if i not in have]
    return ids, unit(head.vectors(parts)), missing
