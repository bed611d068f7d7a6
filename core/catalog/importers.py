"""Importers: Farfetch listings and generic product CSVs into the catalog (idempotent upserts)."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from core.catalog import activity, ids, images
from core.catalog.columns import Columns
from core.catalog.db import Catalog
from core.files.csv_header import header_problem, repeats_header
from core.files.encoding import EncodingError, csv_field_limit, detect, file_problem, open_as, open_text
from core.files.failures import how_far
from core.files.report import ImportReport
from core.files.urls import strip_credentials, url_basename
from core.files.yes_no import yes_no
from core.team.access import Action, require

log = logging.getLogger(__name__)

STORED_COLUMNS = (  # the items table's columns an import writes
    "id",
    "source",
    "title",
    "description",
    "brand",
    "gender",
    "category",
    "colour",
    "price",
    "currency",
    "on_sale",
    "stock",
    "attributes",
)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".avif")
BATCH = 2000
FARFETCH_COLUMNS = ("images.cutOut", "images.model", "shortDescription", "brand.name", "priceInfo.finalPrice")

CSV_FIELD_LIMIT = 10 * 1024 * 1024  # characters in one cell (long descriptions, attribute JSON)


@dataclass
class ImageRef:
    role: str
    path: Path | None
    url: str | None


class RowError(ValueError):
    """A CSV row that cannot become an item."""


def parse_price(text: str | None) -> float | None:
    """'$2,132' -> 2132.0; '' -> None."""
    if text is None or not text.strip():
        return None
    cleaned = text.strip().replace(",", "").lstrip("$€£¥").strip()
    try:
        value = float(cleaned)
    except ValueError:
        raise RowError(f"price {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RowError(f"price {text!r} is not a finite number")
    return value


def parse_bool(text: str | None) -> int | None:
    try:
        answer = yes_no(text)
    except ValueError:
        raise RowError(f"{text!r} is not True/False") from None
    return None if answer is None else int(answer)


def parse_int(text: str | None) -> int | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        raise RowError(f"{text!r} is not a whole number") from None
    if not math.isfinite(value) or abs(value) >= 2**63:  # nan, inf, 1e309, or beyond SQLite's integers
        raise RowError(f"{text!r} is not a whole number in range")
    return int(value)


def _attributes(row: dict[str, str], mapped: set[str]) -> str:
    """The unmapped columns as JSON, URLs stripped of credentials."""
    return json.dumps(
        {
            k: strip_credentials(v) if v.startswith(("http://", "https://")) else v
            for k, v in row.items()
            if k and k not in mapped
        },
        ensure_ascii=False,
    )


class ImageFolder:
    """Files of one folder, listed once, found by exact name only.

    An item's photo is `<id><extension>` for one of IMAGE_EXTENSIONS (any case): `SKU-12.7` never
    gets `SKU-12.jpg`. A name or id holding a path separator never names a file.
    """

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder else None
        self.by_name: dict[str, Path] = {}
        self.by_id: dict[str, Path] = {}
        if self.folder and self.folder.is_dir():
            for entry in sorted(os.scandir(self.folder), key=lambda e: e.name):
                if entry.is_file():
                    path = Path(entry.path)
                    self.by_name[entry.name] = path
                    if path.suffix.lower() in IMAGE_EXTENSIONS:
                        self.by_id.setdefault(entry.name[: -len(path.suffix)], path)

    @staticmethod
    def _plain(name: str) -> bool:
        return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\x00")

    def find(self, name: str) -> Path | None:
        """The file called exactly `name` (a URL's basename)."""
        return self.by_name.get(name) if self._plain(name) else None

    def find_item(self, item_id: str) -> Path | None:
        """The photo of an item: the file `<id>.jpg` (or .jpeg, .png, .webp, .avif, any case)."""
        return self.by_id.get(item_id) if self._plain(item_id) else None


def farfetch_row(row: dict[str, str], folder: ImageFolder) -> tuple[dict, list[ImageRef]]:
    """Map one row of the Kaggle Farfetch layout to an item and its image references."""
    item_id = ids.normalise(row.get("id") or "")
    if not item_id:
        raise RowError("no id")
    known = {
        "id",
        "brand.name",
        "gender",
        "shortDescription",
        "priceInfo.finalPrice",
        "priceInfo.currencyCode",
        "priceInfo.isOnSale",
        "stockTotal",
        "product_category",
    }
    item = {
        "id": item_id,
        "source": "farfetch",
        "title": (row.get("shortDescription") or "").strip() or None,
        "description": (row.get("shortDescription") or "").strip() or None,
        "brand": (row.get("brand.name") or "").strip() or None,
        "gender": (row.get("gender") or "").strip() or None,
        "category": (row.get("product_category") or "").strip() or None,
        "colour": None,
        "price": parse_price(row.get("priceInfo.finalPrice") or row.get("priceInfo.formattedFinalPrice")),
        "currency": (row.get("priceInfo.currencyCode") or "").strip() or None,
        "on_sale": parse_bool(row.get("priceInfo.isOnSale")),
        "stock": parse_int(row.get("stockTotal")),
        "attributes": _attributes(row, known),
    }
    refs = []
    for role, column in (("cutout", "images.cutOut"), ("model", "images.model")):
        url = (row.get(column) or "").strip()
        if url:
            refs.append(ImageRef(role, folder.find(url_basename(url)), url))
    return item, refs


def csv_row(row: dict[str, str], columns: Columns, folder: ImageFolder, base: Path) -> tuple[dict, list[ImageRef]]:
    """Map one generic CSV row to an item and its image reference."""
    item_id = ids.normalise(row.get(columns.id) or "")
    if not item_id:
        raise RowError(f"no value in id column {columns.id!r}")

    def col(name: str | None) -> str | None:
        return ((row.get(name) or "").strip() or None) if name else None

    mapped = {
        c
        for c in (
            columns.id,
            columns.title,
            columns.category,
            columns.colour,
            columns.brand,
            columns.gender,
            columns.image,
            columns.description,
            columns.price,
        )
        if c
    }
    item = {
        "id": item_id,
        "source": "csv",
        "title": col(columns.title),
        "description": col(columns.description),
        "brand": col(columns.brand),
        "gender": col(columns.gender),
        "category": col(columns.category),
        "colour": col(columns.colour),
        "price": parse_price(col(columns.price)),
        "currency": None,
        "on_sale": None,
        "stock": None,
        "attributes": _attributes(row, mapped),
    }
    if columns.image and (value := col(columns.image)):
        if value.startswith(("http://", "https://")):
            return item, [ImageRef("primary", folder.find(url_basename(value)), value)]
        path = Path(value)
        return item, [ImageRef("primary", path if path.is_absolute() else base / path, None)]
    return item, [ImageRef("primary", folder.find_item(item_id), None)]


def _read_rows(csv_path: Path, report: ImportReport) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (row number, row) from a CSV, reporting rows with the wrong number of fields."""
    try:
        encoding, note = detect(csv_path)
    except EncodingError as exc:
        report.problem(csv_path.name, str(exc))
        return
    if note:
        report.problem(csv_path.name, note)
    with open_as(csv_path, encoding) as handle, csv_field_limit(CSV_FIELD_LIMIT):
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            report.problem(str(csv_path.name), "empty file, no header")
            return
        except csv.Error as exc:
            report.problem(f"{csv_path.name} header", f"unreadable header ({exc})")
            return
        problem = header_problem(header)
        if problem:
            report.problem(f"{csv_path.name} header", f"{problem}; nothing imported")
            return
        width = len(header)
        line = 1
        while True:
            line += 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                report.problem(f"row {line}", f"malformed CSV ({exc})")
                continue
            if not values or not any(v.strip() for v in values):
                continue
            if repeats_header(values, header):
                report.problem(f"row {line}", "repeats the header line (were two files joined together?); skipped")
                continue
            if len(values) != width:
                report.problem(f"row {line}", f"{len(values)} fields, expected {width}")
                continue
            yield line, dict(zip(header, values))


def import_rows(
    db: Catalog,
    csv_path: str | Path,
    mapper: Callable[[dict[str, str]], tuple[dict, list[ImageRef]]],
    check_images: bool = True,
    progress: bool = True,
) -> ImportReport:
    """Upsert every good row in batches; bad rows and images are reported, never fatal.

    A catalog, disk or memory failure raises core.files.failures.PartialWork saying how many items were
    committed before it (those are kept). Admins only (NotAllowed otherwise).
    """
    require(Action.IMPORT)
    csv_path = Path(csv_path)
    report = ImportReport()
    problem = file_problem(csv_path)
    if problem:
        report.problem(str(csv_path), problem)
        return report
    with (
        tqdm(desc=f"import {csv_path.name}", unit=" rows", disable=not progress) as bar,
        how_far(lambda: f"{report.items} items imported and committed"),
    ):
        _import(db, csv_path, mapper, check_images, report, bar)
    activity.record(db, Action.IMPORT, f"{csv_path.name}: {report.items:,} items")
    return report


def _import(
    db: Catalog,
    csv_path: Path,
    mapper: Callable[[dict[str, str]], tuple[dict, list[ImageRef]]],
    check_images: bool,
    report: ImportReport,
    bar: tqdm,
) -> None:
    """import_rows' loop: map, check and upsert the rows in batches of BATCH items."""
    seen: set[str] = set()
    items: list[dict] = []
    refs: list[tuple[int, str, ImageRef]] = []
    for line, row in _read_rows(csv_path, report):
        report.rows += 1
        bar.update()
        try:
            item, item_refs = mapper(row)
        except RowError as exc:
            report.problem(f"row {line}", str(exc))
            continue
        item["id"] = ids.normalise(item["id"])
        bad_id = ids.problem(item["id"]) if item["id"] else "no id (only spaces or invisible characters)"
        if bad_id:
            report.problem(f"row {line}", f"{bad_id}; row skipped")
            continue
        if item["id"] in seen:
            report.duplicates += 1
            report.problem(f"row {line}", f"duplicate id {item['id']} (earlier row kept, this one skipped)")
            continue
        seen.add(item["id"])
        items.append(item)
        refs.extend((line, item["id"], ref) for ref in item_refs)
        if len(items) >= BATCH:
            _flush(db, items, refs, report, check_images)
            items, refs = [], []
    _flush(db, items, refs, report, check_images)


def _image_row(item_id: str, ref: ImageRef, check: bool) -> dict:
    row: dict[str, str | int | None] = {
        "item_id": item_id,
        "role": ref.role,
        "path": None,
        "url": strip_credentials(ref.url) if ref.url else None,
        "width": None,
        "height": None,
        "sha256": None,
        "status": "missing",
        "reason": None,
    }
    if ref.path is None:
        row["reason"] = f"{NO_LOCAL_FILE}{ref.role} photo" + (" (use --download to fetch it)" if ref.url else "")
        return row
    row["path"] = str(Path(ref.path).resolve())
    info = images.inspect(ref.path) if check else images.ImageInfo("ok")
    row.update(status=info.status, reason=info.reason, width=info.width, height=info.height, sha256=info.sha256)
    return row


def _flush(
    db: Catalog,
    items: list[dict],
    refs: list[tuple[int, str, ImageRef]],
    report: ImportReport,
    check_images: bool,
) -> None:
    if not items:
        return
    image_rows = [_image_row(item_id, ref, check_images) for _, item_id, ref in refs]
    was_ok = _ok_photos(db, [(row["item_id"], row["role"]) for row in image_rows])
    for (line, _, _), row in zip(refs, image_rows):
        if row["status"] == "ok":
            report.images_ok += 1
            continue
        report.images_bad += 1
        reason = row["reason"]
        if (row["item_id"], row["role"]) in was_ok:
            reason += " (this photo was usable before this import)"
        report.problem(f"row {line}, {Path(row['path']).name}" if row["path"] else f"row {line}", reason)
    columns = ", ".join(STORED_COLUMNS)
    marks = ", ".join("?" for _ in STORED_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in STORED_COLUMNS if c != "id")
    image_cols = ("item_id", "role", "path", "url", "width", "height", "sha256", "status", "reason")
    known = _known_ids(db, [item["id"] for item in items])
    with db.conn:
        changed = db.conn.executemany(
            f"INSERT INTO items ({columns}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}, "
            "updated_at = datetime('now') WHERE "
            + " OR ".join(f"items.{c} IS NOT excluded.{c}" for c in STORED_COLUMNS if c != "id"),
            [tuple(item[c] for c in STORED_COLUMNS) for item in items],
        ).rowcount  # inserted + actually changed rows: an unchanged row is not updated
        db.conn.executemany(
            f"INSERT INTO images ({', '.join(image_cols)}) VALUES ({', '.join('?' for _ in image_cols)}) "
            "ON CONFLICT (item_id, role) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in image_cols[2:]),
            [tuple(row[c] for c in image_cols) for row in image_rows],
        )
    report.items += len(items)
    report.new += len(items) - known
    report.updated += changed - (len(items) - known)
    report.unchanged += known - (changed - (len(items) - known))


def _known_ids(db: Catalog, ids: list[str]) -> int:
    """How many of `ids` the catalog already holds."""
    found = 0
    for start in range(0, len(ids), 900):  # stay under SQLite's bound-parameter limit
        chunk = ids[start : start + 900]
        found += db.execute(
            f"SELECT count(*) FROM items WHERE id IN ({', '.join('?' for _ in chunk)})", chunk
        ).fetchone()[0]
    return found


def _ok_photos(db: Catalog, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Those of the (item id, role) pairs whose stored photo is currently usable."""
    found = set()
    for start in range(0, len(keys), 400):  # stay under SQLite's bound-parameter limit
        chunk = keys[start : start + 400]
        found.update(
            db.execute(
                "SELECT item_id, role FROM images WHERE status = 'ok' AND (item_id, role) IN "
                f"(VALUES {', '.join('(?, ?)' for _ in chunk)})",
                [v for key in chunk for v in key],
            ).fetchall()
        )
    return found


def import_farfetch(
    db: Catalog,
    csv_path: str | Path,
    images_dir: str | Path | None = None,
    download: bool = False,
    progress: bool = True,
    allow_private_hosts: bool = False,
) -> ImportReport:
    """Import a Farfetch listings CSV; with `download`, fetch missing photos into `images_dir` first.

    A named `images_dir` that does not exist is an error unless `download` will create it.
    """
    require(Action.IMPORT)  # before any download
    csv_path = Path(csv_path)
    problem = file_problem(csv_path)
    header, problem = ([], problem) if problem else _read_header(csv_path)
    problem = problem or _not_farfetch(header)
    if problem:
        return _header_report(csv_path, problem)
    if images_dir and not download and not Path(images_dir).is_dir():
        return _no_folder(images_dir)
    folder_path = Path(images_dir) if images_dir else csv_path.parent / "images"
    fetched = None
    if download:
        from core.catalog.download import download_listing_images

        fetched = download_listing_images(
            csv_path, folder_path, progress=progress, allow_private_hosts=allow_private_hosts
        )
    folder = ImageFolder(folder_path)
    report = import_rows(db, csv_path, lambda row: farfetch_row(row, folder), progress=progress)
    if fetched:
        report.problems[:0] = fetched.problems
    return report


def import_csv(
    db: Catalog,
    csv_path: str | Path,
    images_dir: str | Path | None = None,
    columns: Columns | None = None,
    progress: bool = True,
) -> ImportReport:
    """Import a generic product CSV with a column mapping (defaults: the fashion-products layout)."""
    csv_path = Path(csv_path)
    columns = columns or Columns()
    problem = file_problem(csv_path)
    header, problem = ([], problem) if problem else _read_header(csv_path)
    if problem:
        return _header_report(csv_path, problem)
    missing = _missing_columns(header, columns)
    if missing:
        return _header_report(
            csv_path,
            f"no column(s) {', '.join(missing)} in the header; name the right ones with --id-col, --title-col, ...",
        )
    if images_dir and not Path(images_dir).is_dir():
        return _no_folder(images_dir)
    folder = ImageFolder(images_dir)
    report = import_rows(db, csv_path, lambda row: csv_row(row, columns, folder, csv_path.parent), progress=progress)
    return _no_folder_given(report) if images_dir is None and not columns.image else report


NO_LOCAL_FILE = "no local file for the "


def _no_folder_given(report: ImportReport) -> ImportReport:
    """Without a photo folder no row's photo is looked for: one line says so, not one problem a row."""
    unlooked = [p for p in report.problems if p.reason.startswith(NO_LOCAL_FILE) and "usable before" not in p.reason]
    if unlooked:
        report.problems = [p for p in report.problems if p not in unlooked]
        report.problem(
            "--images",
            f"no photo folder given: the photos of {len(unlooked):,} rows were not looked for; import again "
            "with --images FOLDER to add them",
        )
    return report


def _no_folder(images_dir: str | Path) -> ImportReport:
    """The report of an import refused because its photo folder does not exist."""
    report = ImportReport()
    report.problem(str(images_dir), "photo folder not found (nothing imported; check the path)")
    return report


def _read_header(csv_path: Path) -> tuple[list[str], str | None]:
    """(the CSV's header, None), or ([], why it cannot be imported): checked before any row is read."""
    try:
        with open_text(csv_path) as (handle, _):
            header = next(csv.reader(handle), [])
    except (EncodingError, csv.Error) as exc:
        return [], str(exc)
    except UnicodeDecodeError:
        return [], "not text in its detected encoding"
    if not header:
        return [], "empty file, no header"
    return header, header_problem(header)


def _header_report(csv_path: Path, problem: str) -> ImportReport:
    """The report of an import refused because of its file or header: nothing imported."""
    report = ImportReport()
    report.problem(csv_path.name, f"{problem}; nothing imported")
    return report


def _missing_columns(header: list[str], columns: Columns) -> list[str]:
    """Mapped columns that the CSV header lacks (the id column must exist; others if named)."""
    defaults = Columns()
    missing = []
    for name, value in vars(columns).items():
        if value and value not in header and (name == "id" or value != getattr(defaults, name)):
            missing.append(repr(value))
    return missing


def _not_farfetch(header: list[str]) -> str | None:
    """Why a header is not a Farfetch listings header (it needs `id` and image or description columns)."""
    if "id" in header and any(c in header for c in FARFETCH_COLUMNS):
        return None
    lacking = ", ".join(c for c in ("id", *FARFETCH_COLUMNS) if c not in header)
    return f"not a Farfetch listings file: the header lacks {lacking}"
