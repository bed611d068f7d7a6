"""Similar-item CSV export: every item and its curated top-k look-alikes (or the model's, `raw`), streamed and
written atomically."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from core.catalog import activity
from core.catalog.db import Catalog
from core.catalog.filters import matching_item_ids
from core.catalog.items import item_cards
from core.catalog.vectors import item_ids_with_vectors
from core.curation.curated import CuratedHit, Curator
from core.files.atomic import output_text_writer
from core.files.csv_injection import neutralise
from core.files.invisible import visible
from core.files.output_path import check_output
from core.files.urls import strip_credentials
from core.search.queries import Hit, search_many
from core.search.space import MethodSpace
from core.team.access import Action, require

log = logging.getLogger(__name__)

COLUMNS = (
    "item_id",
    "neighbour_id",
    "rank",
    "score",
    "method",
    "item_title",
    "neighbour_title",
    "item_image_url",
    "neighbour_image_url",
    "item_image_file",
    "neighbour_image_file",
    "reason",
)
CHUNK = 512
ENCODING = "utf-8-sig"


def _display(db: Catalog) -> dict[str, tuple[str, str, str]]:
    """Item id -> (title, its photo's URL without credentials or "", the local file of the photo that
    represents it or "").

    A local photo deleted or moved since import leaves its file cell empty (never a dead path); the
    row stays, since its neighbours were found from the photo as it was embedded.
    """
    cards = item_cards(db)
    gone = sum(card.photo_missing for card in cards.values())
    if gone:
        log.warning("%d items' photos were deleted or moved since import: their image_file cells are empty", gone)
    return {
        item_id: (
            card.title or "",
            strip_credentials(card.image_url) if card.image_url else "",
            "" if card.photo_missing else card.image_path or "",
        )
        for item_id, card in cards.items()
    }


def _approved(db: Catalog) -> set[tuple[str, str]]:
    return {
        (q, c)
        for q, c in db.execute(
            "SELECT query_key, candidate_id FROM current_labels WHERE query_kind = 'item' AND relevant = 1"
        )
    }


def export_similar(
    space: MethodSpace,
    k: int,
    out: str | Path,
    filters: dict | None = None,
    only_relevant: bool = False,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    force: bool = False,
    raw: bool = False,
) -> int:
    """Write one row per (item, rank) for items with vectors; return the number of rows written.

    Each item's list is its curated list (core/curation/curated.py: pins, verdicts, steered refill,
    hides and rules; hidden items get no rows), its `reason` column saying why each neighbour is there;
    `raw` writes the model's lists untouched (reason `model`).

    Filters select both the exported items and their neighbours. With `only_relevant`, only
    pairs a person marked relevant (latest judgement) are kept. The file appears only when
    complete; UTF-8 with a byte-order mark so spreadsheets read accents right. Text cells that a
    spreadsheet would run as formulas are neutralised (core.files.csv_injection). `out` is checked
    first (core.files.output_path): an existing file that is not such an export needs `force`. A method
    without vectors is a ValueError and writes nothing.
    """
    db, method = space.catalog, space.name
    require(Action.EXPORT)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    check_output(out, db, COLUMNS, ENCODING, force)
    with_vectors = set(item_ids_with_vectors(db, method, space.searched_version()))
    if not with_vectors:
        raise ValueError(f"no {method} vectors in the catalog; run `python -m core embed --method {method}` first")
    display = _display(db)
    items = [i for i in matching_item_ids(db, filters or {}) if i in with_vectors]
    approved = _approved(db) if only_relevant else None
    curator = None if raw else Curator(space, filters, every_item=True)
    rows = 0
    with (
        output_text_writer(out, encoding=ENCODING) as handle,
        tqdm(total=len(items), desc=f"export {method}", unit=" items", disable=not progress) as bar,
    ):
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        lists: Iterator[tuple[str, Sequence[Hit]]] = (
            curator.many(items, k) if curator else search_many(space, items, k, filters=filters)
        )
        for done, (item_id, hits) in enumerate(lists, start=1):
            title, url, file = display.get(item_id, ("", "", ""))
            for hit in hits:
                if approved is not None and (item_id, hit.item_id) not in approved:
                    continue
                n_title, n_url, n_file = display.get(hit.item_id, ("", "", ""))
                writer.writerow(
                    (
                        neutralise(visible(item_id)),  # ids stored before the id rules: escaped
                        neutralise(visible(hit.item_id)),
                        hit.rank,
                        f"{hit.score:.6f}",
                        *(
                            neutralise(visible(text or "", keep="\t\n\r"))
                            for text in (method, title, n_title, url, n_url, file, n_file)
                        ),
                        hit.reason if isinstance(hit, CuratedHit) else "model",
                    )
                )
                rows += 1
            if done % CHUNK == 0:
                bar.update(CHUNK)
                if on_progress:
                    on_progress(done, len(items))
        bar.update(len(items) - bar.n)
        if on_progress:
            on_progress(len(items), len(items))
    activity.record(db, Action.EXPORT, f"similar items by {method}: {rows:,} rows to {Path(out).name}")
    return rows
