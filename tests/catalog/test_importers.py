"""Importers on real rows: Farfetch layout, product CSVs, broken rows and broken images."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.catalog.importers import Columns, import_csv, import_farfetch, parse_price
from core.catalog.items import stats
from core.files.urls import url_basename

from helpers import DEMO, FIXTURES, SHARED, needs_shared

FARFETCH = FIXTURES / "farfetch_40.csv"


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_parse_price_handles_real_formats():
    assert parse_price("$2,132") == 2132.0
    assert parse_price("2369") == 2369.0
    assert parse_price("") is None


def test_farfetch_fixture_maps_real_fields(catalog):
    report = import_farfetch(catalog, FARFETCH, progress=False)
    source = rows_of(FARFETCH)
    assert report.items == len(source) == 40
    first = source[0]
    item = catalog["items"].get(first["id"])
    assert item["brand"] == first["brand.name"]
    assert item["price"] == float(first["priceInfo.finalPrice"])
    assert item["on_sale"] == (1 if first["priceInfo.isOnSale"] == "True" else 0)
    assert item["category"] == first["product_category"]
    assert item["title"] == first["shortDescription"]
    attributes = json.loads(item["attributes"])
    assert attributes["priceInfo.formattedFinalPrice"] == first["priceInfo.formattedFinalPrice"]
    urls = {r["role"]: r["url"] for r in catalog["images"].rows_where("item_id = ?", [first["id"]])}
    assert urls == {"cutout": first["images.cutOut"], "model": first["images.model"]}
    # No local photos: recorded as missing, with the remedy.
    assert stats(catalog)["images_ok"] == 0
    reason = catalog.execute("SELECT reason FROM images LIMIT 1").fetchone()[0]
    assert "--download" in reason


def test_farfetch_without_product_category_and_with_local_photos(catalog, tmp_path):
    source = rows_of(FARFETCH)[:5]
    fields = [f for f in source[0] if f != "product_category"]
    csv_path = tmp_path / "listings.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(source)
    photos = tmp_path / "photos"
    photos.mkdir()
    demo_photos = sorted((DEMO / "images").iterdir())
    for row, photo in zip(source, demo_photos):
        shutil.copy(photo, photos / url_basename(row["images.cutOut"]))
    report = import_farfetch(catalog, csv_path, photos, progress=False)
    assert report.items == 5
    assert report.images_ok == 5  # the cut-outs
    assert catalog["items"].get(source[0]["id"])["category"] is None
    ok = catalog.execute("SELECT item_id, width FROM images WHERE status = 'ok' AND role = 'cutout'").fetchall()
    assert len(ok) == 5 and all(width == 224 for _, width in ok)


def test_reimport_is_idempotent_and_updates_changed_rows(catalog, tmp_path):
    first = import_farfetch(catalog, FARFETCH, progress=False)
    again = import_farfetch(catalog, FARFETCH, progress=False)
    assert (first.new, first.updated, first.unchanged) == (40, 0, 0)
    assert (again.items, again.new, again.updated, again.unchanged) == (40, 0, 0, 40)
    assert "40 items imported from 40 rows: 0 new, 0 updated, 40 unchanged" in again.summary()
    assert catalog.execute("SELECT count(*) FROM items").fetchone()[0] == 40
    assert catalog.execute("SELECT count(*) FROM images").fetchone()[0] == 80
    source = rows_of(FARFETCH)
    source[3]["priceInfo.finalPrice"] = "99"
    changed = tmp_path / "changed.csv"
    with open(changed, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(source[0]))
        writer.writeheader()
        writer.writerows(source)
    report = import_farfetch(catalog, changed, progress=False)
    assert (report.new, report.updated, report.unchanged) == (0, 1, 39)
    assert catalog["items"].get(source[3]["id"])["price"] == 99.0
    assert catalog.execute("SELECT count(*) FROM items").fetchone()[0] == 40


def _csv_line(values: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(values)
    return buf.getvalue().strip()


def test_broken_rows_are_reported_and_good_rows_land(catalog, tmp_path):
    text = FARFETCH.read_text(encoding="utf-8").splitlines()
    header, good = text[0], text[1:11]
    width = header.count(",") + 1
    no_id = next(csv.reader([good[4]]))
    no_id[4] = ""
    bad_price = next(csv.reader([good[5]]))
    bad_price[12] = "lots"
    lines = [
        header,
        *good[:4],
        good[0],  # duplicate id
        "1,2,3",  # too few fields
        ",".join(["x"] * (width + 2)),  # too many fields
        _csv_line(no_id),
        _csv_line(bad_price),
        *good[6:],
        ",".join([""] * width),  # blank row: skipped, not an error
        '"unterminated quote,' + good[2],  # swallows the rest of the file
    ]
    path = tmp_path / "broken.csv"
    path.write_text("\n".join(lines) + "\n")
    report = import_farfetch(catalog, path, progress=False)
    reasons = [p.reason for p in report.problems]
    assert report.items == 8  # good rows 0-3 and 6-9
    assert catalog.execute("SELECT count(*) FROM items").fetchone()[0] == 8
    assert report.duplicates == 1
    assert sum("duplicate id" in r for r in reasons) == 1
    assert sum("fields, expected" in r for r in reasons) == 3  # short, long, unterminated
    assert "no id" in reasons
    assert any("'lots' is not a number" in r for r in reasons)
    assert all(p.where.startswith("row ") for p in report.problems)
    assert report.ok


def _broken_images(folder: Path) -> dict[str, str]:
    """Write one image per awkward case; returns id -> expected status."""
    base = Image.open(sorted((DEMO / "images").iterdir())[0]).convert("RGB")
    cases = {}
    (folder / "zero.jpg").write_bytes(b"")
    cases["zero"] = "unreadable"
    (folder / "garbage.jpg").write_bytes(b"\x00not an image at all" * 50)
    cases["garbage"] = "unreadable"
    buf = io.BytesIO()
    base.save(buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    cases["truncated"] = "unreadable"
    base.save(folder / "pngnamedjpg.jpg", "PNG")  # wrong extension, good content
    cases["pngnamedjpg"] = "ok"
    base.convert("CMYK").save(folder / "cmyk.jpg", "JPEG")
    cases["cmyk"] = "ok"
    base.convert("P").save(folder / "palette.png")
    cases["palette"] = "ok"
    Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 256).save(folder / "sixteen.png")
    cases["sixteen"] = "ok"
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "alpha.png")
    cases["alpha"] = "ok"
    base.save(folder / "webp.webp", "WEBP")
    cases["webp"] = "ok"
    Image.new("1", (9000, 9000)).save(folder / "bomb.png")  # 81 Mpx, tiny file
    cases["bomb"] = "unreadable"
    return cases


def test_broken_images_are_reported_and_good_ones_land(catalog, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    cases = _broken_images(folder)
    cases["nofile"] = "missing"
    csv_path = tmp_path / "products.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "productDisplayName", "articleType", "baseColour", "gender", "season"])
        for item_id in cases:
            writer.writerow([item_id, f"Item {item_id}", "Tshirts", "Blue", "Men", "Fall"])
    report = import_csv(catalog, csv_path, folder, progress=False)
    assert report.items == len(cases)
    status = dict(catalog.execute("SELECT item_id, status FROM images").fetchall())
    assert status == cases
    row = {item_id: n for n, item_id in enumerate(cases, start=2)}  # the header is row 1
    wheres = {p.where for p in report.problems}
    assert f"row {row['bomb']}, bomb.png" in wheres and f"row {row['nofile']}" in wheres  # the row, then the file
    reasons = {p.where.split(", ")[-1]: p.reason for p in report.problems}
    assert "too large" in reasons["bomb.png"]
    assert "0 bytes" in reasons["zero.jpg"]
    assert {"garbage.jpg", "truncated.jpg"} <= set(reasons)
    assert json.loads(catalog["items"].get("cmyk")["attributes"]) == {"season": "Fall"}


@needs_shared
@pytest.mark.parametrize("photo", sorted((SHARED / "query-photos").glob("*")) if SHARED.is_dir() else [])
def test_shopper_photos_in_every_format_are_readable(photo):
    from core.catalog.images import inspect

    info = inspect(photo)
    assert info.status == "ok", info.reason
    assert info.width >= 400


def test_import_csv_column_flags_and_image_column(catalog, tmp_path):
    photos = sorted((DEMO / "images").iterdir())[:3]
    csv_path = tmp_path / "shop.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "name", "type", "hue", "maker", "who", "picture", "extra"])
        for n, photo in enumerate(photos):
            writer.writerow([f"S{n}", f"Name {n}", "Bag", "Red", "Acme", "Women", str(photo), "kept"])
    cols = Columns(id="sku", title="name", category="type", colour="hue", brand="maker", gender="who", image="picture")
    report = import_csv(catalog, csv_path, None, cols, progress=False)
    assert report.items == 3 and report.images_ok == 3
    item = catalog["items"].get("S1")
    assert (item["title"], item["category"], item["brand"], item["gender"]) == ("Name 1", "Bag", "Acme", "Women")
    assert json.loads(item["attributes"]) == {"extra": "kept"}


def test_import_csv_names_a_missing_column(catalog, tmp_path):
    csv_path = tmp_path / "shop.csv"
    csv_path.write_text("sku,name\n1,a\n")
    report = import_csv(catalog, csv_path, None, Columns(id="sku", title="nom"), progress=False)
    assert not report.ok
    assert "'nom'" in report.problems[0].reason


@needs_shared
def test_real_farfetch_sample_imports_every_unique_listing(catalog):
    path = SHARED / "farfetch" / "listings_sample.csv"
    rows = rows_of(path)
    unique = len({r["id"] for r in rows})
    first = import_farfetch(catalog, path, progress=False)
    again = import_farfetch(catalog, path, progress=False)
    count = catalog.execute("SELECT count(*) FROM items").fetchone()[0]
    assert first.rows == again.rows == len(rows) == 7500
    assert count == unique  # 7,495: the sample repeats 5 listings verbatim
    assert first.duplicates == len(rows) - unique


@needs_shared
def test_fashion_products_import_gives_every_readable_image(catalog):
    folder = SHARED / "fashion-products"
    report = import_csv(catalog, folder / "styles.csv", folder / "images", progress=False)
    assert report.items == 4000
    figures = stats(catalog)
    assert figures["items"] == 4000 and figures["images_ok"] == 4000 and figures["images_bad"] == 0


def test_an_import_without_a_photo_folder_says_so_once_not_once_a_row(catalog):
    """No --images: one line saying the photos were not looked for, not 300 problems; the items land."""
    report = import_csv(catalog, DEMO / "styles.csv", progress=False)
    assert report.items == 300 and len(report.problems) == 1
    assert report.problems[0].where == "--images" and "the photos of 300 rows were not looked for" in str(
        report.problems[0]
    )


def test_a_file_that_is_no_photo_leaves_no_hash_behind(catalog, tmp_path):
    """Only a usable photo has its SHA-256 recorded: a refused file (garbage, truncated, a bomb) has none."""
    folder = tmp_path / "images"
    folder.mkdir()
    cases = _broken_images(folder)
    csv_path = tmp_path / "products.csv"
    csv_path.write_text("id,productDisplayName\n" + "".join(f"{i},Item {i}\n" for i in cases))
    import_csv(catalog, csv_path, folder, progress=False)
    hashed = dict(catalog.execute("SELECT item_id, sha256 IS NOT NULL FROM images").fetchall())
    assert hashed == {item_id: status == "ok" for item_id, status in cases.items()}
