"""Importers on real rows: Farfetch layout, product CSVs, broken rows and broken images."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.catalog.db import open_catalog
from core.catalog.importers import Columns, import_csv, import_farfetch, parse_price
from core.catalog.items import stats
from core.curation.labels import import_labels
from core.engines.embed import embed_catalog
from core.files.urls import url_basename

from helpers import (
    DEMO,
    FIXTURES,
    SHARED,
    STYLES_HEADER,
    STYLES_ROW,
    disk_full_after,
    encoded,
    needs_shared,
    run_cli,
    small_styles,
    styles_csv,
)

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
    assert stats(catalog).images_ok == 0
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
    assert figures.items == 4000 and figures.images_ok == 4000 and figures.images_bad == 0


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


def test_latin1_and_utf16_product_csvs_keep_their_accents(catalog, tmp_path):
    text = f"{STYLES_HEADER}\n1,Men,A,B,Tshirts,Blue,Fall,2011,Casual,Café crème\n"
    for name, encoding in (("latin1.csv", "latin-1"), ("utf16.csv", "utf-16")):
        (tmp_path / name).write_bytes(text.replace("1,Men", f"{name[:5]},Men").encode(encoding))
    latin = import_csv(catalog, tmp_path / "latin1.csv", progress=False)
    assert catalog["items"].get("latin")["title"] == "Café crème"
    assert any("not UTF-8" in p.reason and "Windows-1252" in p.reason for p in latin.problems)
    utf16 = import_csv(catalog, tmp_path / "utf16.csv", progress=False)
    assert catalog["items"].get("utf16")["title"] == "Café crème"
    assert not any("UTF-8" in p.reason for p in utf16.problems)
    (tmp_path / "nobom.csv").write_bytes(text.encode("utf-16-le"))
    refused = import_csv(catalog, tmp_path / "nobom.csv", progress=False)
    assert not refused.ok and "UTF-16 without a byte-order mark" in refused.problems[0].reason


def test_latin1_farfetch_and_labels_files(catalog, tmp_path):
    rows = rows_of(FARFETCH)[:2]
    rows[0]["shortDescription"] = "Robe à fleurs"
    path = tmp_path / "listings.csv"
    with open(path, "w", newline="", encoding="cp1252") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import_farfetch(catalog, path, progress=False)
    assert catalog["items"].get(rows[0]["id"])["title"] == "Robe à fleurs"
    labels = tmp_path / "labels.csv"
    labels.write_bytes(
        f"query_key,candidate_id,method,relevant,labeler,note\n"
        f"{rows[0]['id']},{rows[1]['id']},color_hist,yes,Zoë,très proche\n".encode("latin-1")
    )
    report = import_labels(catalog, labels)
    assert report.items == 1 and "not UTF-8" in report.problems[0].reason
    assert catalog.execute("SELECT labeler, note FROM labels").fetchone() == ("Zoë", "très proche")


def test_a_missing_photo_folder_is_an_error_and_changes_nothing(tmp_path):
    csv_path, folder = small_styles(tmp_path)
    db = tmp_path / "t.db"
    assert run_cli("import-csv", str(csv_path), "--images", str(folder), "--db", str(db)).returncode == 0
    done = run_cli("import-csv", str(csv_path), "--images", str(tmp_path / "photoz"), "--db", str(db))
    assert done.returncode == 1 and "photo folder not found" in done.stderr
    catalog = open_catalog(db)
    assert catalog.execute("SELECT count(*) FROM images WHERE status = 'ok'").fetchone()[0] == 6
    report = import_farfetch(catalog, FARFETCH, tmp_path / "photoz", progress=False)
    assert not report.ok and "photo folder not found" in report.problems[0].reason


def test_every_missing_photo_is_listed_and_a_downgrade_is_named(catalog, tmp_path):
    csv_path, folder = small_styles(tmp_path)
    first = import_csv(catalog, csv_path, folder, progress=False)
    assert first.images_ok == 6 and first.problems == []
    embed_catalog(catalog, "color_hist", progress=False)
    gone = sorted(folder.iterdir())[0]
    gone.unlink()  # a photo deleted after embedding
    with open(csv_path, "a", encoding="utf-8") as handle:
        handle.write("999999,Men,A,B,Tshirts,Blue,Fall,2011,Casual,No photo at all\n")
    again = import_csv(catalog, csv_path, folder, progress=False)
    assert again.images_ok == 5 and again.images_bad == 2
    reasons = [str(p) for p in again.problems]
    assert len(reasons) == 2
    missing = [r[0] for r in catalog.execute("SELECT item_id FROM images WHERE status = 'missing' ORDER BY item_id")]
    assert missing == sorted([gone.stem, "999999"])
    assert sum("was usable before this import" in r for r in reasons) == 1
    assert any(r.startswith("row 8: no local file") for r in reasons)


def test_nul_bytes_in_ids_are_rejected_with_a_problem(catalog, tmp_path):
    path = tmp_path / "nul.csv"
    path.write_text(
        f"{STYLES_HEADER}\n12\x0034,Men,A,B,Tshirts,Blue,Fall,2011,Casual,Nul\n"
        "77,Men,A,B,Tshirts,Blue,Fall,2011,Casual,Fine\n",
        encoding="utf-8",
    )
    report = import_csv(catalog, path, progress=False)
    assert report.items == 1
    assert any(p.where == "row 2" and "NUL" in p.reason for p in report.problems)
    assert [r[0] for r in catalog.execute("SELECT id FROM items")] == ["77"]


def test_a_full_disk_during_import_keeps_the_committed_batches(catalog, monkeypatch):
    from core.catalog import importers
    from core.files.failures import PartialWork

    monkeypatch.setattr(importers, "BATCH", 50)
    disk_full_after(catalog, 20)
    with pytest.raises(
        PartialWork,
        match=r"database or disk is full: (\d+) items imported and committed before "
        "the error; run the same command again to carry on",
    ) as stopped:
        import_csv(catalog, DEMO / "styles.csv", DEMO / "images", progress=False)
    kept = int(stopped.value.progress.split()[0])
    assert 0 < kept < 300 and kept % 50 == 0
    assert catalog.execute("SELECT count(*) FROM items").fetchone()[0] == kept
    disk_full_after(catalog, 10_000)
    assert import_csv(catalog, DEMO / "styles.csv", DEMO / "images", progress=False).items == 300
    assert catalog.execute("SELECT count(*) FROM items").fetchone()[0] == 300


def test_photos_are_found_by_exact_name_and_ids_with_separators_name_no_file(tmp_path, catalog):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "SKU-12.jpg").write_bytes(encoded("JPEG"))
    (folder / "SKU-12.5.jpg").write_bytes(encoded("PNG"))
    (folder / "Cap.WEBP").write_bytes(encoded("WEBP"))
    ids = ["SKU-12", "SKU-12.5", "SKU-12.7", "dir/SKU-12", "../../etc/SKU-12", "..\\SKU-12", "SKU-12.jpg", "Cap"]
    path = tmp_path / "p.csv"
    path.write_text(STYLES_HEADER + "\n" + "".join(f'"{i}",Men,A,B,Caps,Blue,Fall,2011,Casual,T\n' for i in ids))
    report = import_csv(catalog, path, folder, progress=False)
    found = dict(catalog.execute("SELECT item_id, path FROM images WHERE status = 'ok'").fetchall())
    assert {i: Path(p).name for i, p in found.items()} == {
        "SKU-12": "SKU-12.jpg",
        "SKU-12.5": "SKU-12.5.jpg",
        "Cap": "Cap.WEBP",
    }
    assert report.items == len(ids) and report.images_bad == len(ids) - 3


def test_ids_with_line_breaks_are_refused_at_import_with_the_row(catalog, tmp_path):
    path = tmp_path / "odd.csv"
    rows = ['"a\nb"', "a\u2028b", "a\x85b", "a\u2029b", "a\x1b[31mb", "fine"]
    path.write_text(STYLES_HEADER + "\n" + "".join(f"{r},Men,A,B,Caps,Blue,Fall,2011,Casual,T\n" for r in rows))
    report = import_csv(catalog, path, progress=False)
    assert [r[0] for r in catalog.execute("SELECT id FROM items")] == ["fine"]
    refused = {p.where for p in report.problems if "control or invisible character" in p.reason}
    assert refused == {"row 2", "row 3", "row 4", "row 5", "row 6"}, report.problems


@pytest.mark.parametrize(
    "header, named",
    [
        (STYLES_HEADER + ",id", "column 'id' appears twice"),
        (STYLES_HEADER + ",productDisplayName", "column 'productDisplayName' appears twice"),
        (STYLES_HEADER.replace("gender", "\ufeffgender"), "U+FEFF"),
        (STYLES_HEADER.replace("id,", "\u200bid,", 1), "U+200B"),
        (STYLES_HEADER + "".join(f",x{n}" for n in range(1000)), "1,010 columns"),
    ],
    ids=["id-twice", "title-twice", "bom-mid-header", "zero-width-in-id", "too-many-columns"],
)
def test_a_bad_header_is_refused_naming_the_column(catalog, tmp_path, header, named):
    width = header.count(",") + 1
    path = styles_csv(tmp_path, header, [STYLES_ROW.format(1) + ",x" * (width - 10)])
    report = import_csv(catalog, path, progress=False)
    assert report.items == 0 and len(report.problems) == 1 and named in report.problems[0].reason
    assert "nothing imported" in report.problems[0].reason
    assert catalog.execute("SELECT count(*) FROM items").fetchone()[0] == 0


def test_a_million_columns_is_refused_at_once(catalog, tmp_path):
    import time

    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{n}" for n in range(1_000_000)) + "\n" + ",".join("1" * 1_000_000) + "\n")
    start = time.perf_counter()
    report = import_csv(catalog, path, progress=False, columns=Columns(id="c0"))
    assert time.perf_counter() - start < 10
    assert report.items == 0 and "1,000,000 columns" in report.problems[0].reason


def test_a_repeated_header_line_is_skipped_and_named(catalog, tmp_path):
    path = tmp_path / "joined.csv"
    path.write_bytes(
        (STYLES_HEADER + "\n" + STYLES_ROW.format(1) + "\n").encode()
        + b"\xef\xbb\xbf"
        + (STYLES_HEADER + "\n" + STYLES_ROW.format(2) + "\n").encode()
    )
    report = import_csv(catalog, path, progress=False)
    assert sorted(r[0] for r in catalog.execute("SELECT id FROM items")) == ["1", "2"]
    assert any(p.where == "row 3" and "repeats the header line" in p.reason for p in report.problems)


def test_import_farfetch_checks_the_header_first(catalog, tmp_path):
    noise = tmp_path / "noise.csv"
    noise.write_bytes(np.random.default_rng(0).integers(1, 256, 3_000_000, dtype=np.uint8).tobytes())
    done = run_cli("import-farfetch", str(noise), "--db", str(tmp_path / "f.db"))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr[:2000]
    styles = styles_csv(tmp_path, STYLES_HEADER, [STYLES_ROW.format(1)])
    done = run_cli("import-farfetch", str(styles), "--db", str(tmp_path / "f.db"))
    assert done.returncode == 1 and "not a Farfetch listings file: the header lacks images.cutOut" in done.stderr


def test_infinite_and_nan_prices_and_stocks_are_reported_with_the_row(catalog, tmp_path):
    header = STYLES_HEADER + ",price"
    prices = ["1e309", "Infinity", "-inf", "nan", "NaN", "12.5"]
    path = styles_csv(tmp_path, header, [STYLES_ROW.format(n) + f",{p}" for n, p in enumerate(prices)])
    report = import_csv(catalog, path, columns=Columns(price="price"), progress=False)
    assert [r[0] for r in catalog.execute("SELECT price FROM items")] == [12.5]
    bad = {p.where for p in report.problems if "not a finite number" in p.reason}
    assert bad == {f"row {n}" for n in range(2, 7)}


def test_infinite_stock_is_a_bad_value(catalog, tmp_path):
    from core.catalog.importers import import_farfetch

    header = "id,shortDescription,stockTotal,priceInfo.finalPrice"
    path = styles_csv(tmp_path, header, ["1,a,inf,1", "2,b,1e30,1", "3,c,nan,1", "4,d,7,1e309", "5,e,3,2"])
    report = import_farfetch(catalog, path, progress=False)
    assert catalog.execute("SELECT id, stock FROM items").fetchall() == [("5", 3)]
    assert {p.where for p in report.problems if "row" in p.where} == {"row 2", "row 3", "row 4", "row 5"}


def test_spellings_of_one_id_are_one_item(catalog, tmp_path):
    spellings = ["Robe-e\u0301", "Robe-\u00e9", "Robe-\u00e9\u00a0", "\u200bRobe-\u00e9", "\ufeffRobe-\u00e9 "]
    path = styles_csv(tmp_path, STYLES_HEADER, [STYLES_ROW.format(f'"{s}"') for s in spellings])
    report = import_csv(catalog, path, progress=False)
    assert [r[0] for r in catalog.execute("SELECT id FROM items")] == ["Robe-\u00e9"]
    assert report.duplicates == 4
    inner = styles_csv(
        tmp_path, STYLES_HEADER, [STYLES_ROW.format("a\u202eb"), STYLES_ROW.format("a\u200bb")], "inner.csv"
    )
    report = import_csv(catalog, inner, progress=False)
    assert report.items == 0 and {"U+202E" in str(report.problems), "U+200B" in str(report.problems)} == {True}


def test_a_fifo_or_device_as_csv_is_one_line_and_never_hangs(demo_catalog, tmp_path):
    fifo = tmp_path / "labels.csv"
    os.mkfifo(fifo)
    done = run_cli("labels", "import", str(fifo), "--db", str(demo_catalog.path))
    assert done.returncode == 2 and "not a regular file" in done.stderr, done.stderr  # nothing usable: one line
    done = run_cli("import-csv", "/dev/urandom", "--db", str(tmp_path / "c.db"))
    assert done.returncode == 1 and "not a regular file" in done.stderr and "not found" not in done.stderr
