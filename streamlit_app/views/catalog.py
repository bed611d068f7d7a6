"""Catalog: import listings with photos, browse with filters, open an item."""

import hashlib
import logging
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core.catalog.db import busy
from core.catalog.importers import IMAGE_EXTENSIONS, Columns, import_csv, import_farfetch
from core.catalog.items import BrowseRow, browse, item_detail, stats
from core.files import failures
from core.files.archive import MAX_FILES, ArchiveRefused, unpack_photos
from core.team.access import Action

import ui

log = logging.getLogger(__name__)
database = ui.db()
st.title("Catalog")
ZIP_MB = 500  # an uploaded zip of photos; the other uploads keep server.maxUploadSize (20 MB)


def photos_from_zip(data: bytes):
    """Unpack an uploaded zip of photos into the catalog's photos/ folder (one folder per zip, by
    content, so importing the same zip again finds its photos); (folder, report) or (None, None)."""
    folder = database.files_dir / "photos" / f"upload-{hashlib.sha256(data).hexdigest()[:12]}"
    try:
        return folder, unpack_photos(data, folder, IMAGE_EXTENSIONS)
    except (ArchiveRefused, OSError) as exc:
        log.info("zip of photos refused", exc_info=True)
        shutil.rmtree(folder, ignore_errors=True)
        st.error(f"The zip of photos cannot be used: {ui.plain(ui.without_paths(str(exc), folder))}.")
        return None, None


def run_import(kind: str, upload, images: Path | None, columns: Columns):
    """The import, as the CLI runs it; the report, or None after one error line."""
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "upload.csv"  # the uploaded name is never used as a path
        csv_path.write_bytes(upload.getvalue())
        with st.spinner("Importing…"):
            try:
                if kind == "Farfetch listings":
                    return import_farfetch(database, csv_path, images, progress=False)
                return import_csv(database, csv_path, images, columns, progress=False)
            except failures.FAILURES + (ValueError, RuntimeError) as exc:  # the CLI's one line
                log.info("import failed", exc_info=True)
                st.error(f"Import stopped: {ui.plain(failures.one_line(exc, database.path))}")
                return None


if ui.may(Action.IMPORT):  # admins only: the library refuses anyone else too
    with st.expander("Import a catalog", expanded=stats(database).items == 0):
        kind = st.radio("Layout", ["Farfetch listings", "Product CSV"], horizontal=True, key="import_kind")
        with st.form("import"):
            upload = st.file_uploader("CSV file", type=["csv"])
            c = st.columns(2)
            photos_zip = c[0].file_uploader(
                f"Photos: a .zip (up to {ZIP_MB} MB)",
                type=["zip"],
                max_upload_size=ZIP_MB,
                help=f"Unpacked into the catalog's own folder; up to {MAX_FILES:,} photos. "
                + ("Photos named by their URL's file name." if kind == "Farfetch listings" else "<id>.jpg/.png/.webp"),
            )
            folder = c[1].text_input(
                "…or the photo folder on this computer",
                help="A folder the app's computer can read: "
                + ("photos named by their URL's file name" if kind == "Farfetch listings" else "<id>.jpg/.png/.webp"),
            )
            columns = Columns()
            if kind == "Product CSV":
                st.caption("Column names (the defaults fit the Fashion Product Images styles.csv):")
                c = st.columns(4)
                columns = Columns(
                    id=c[0].text_input("id column", "id"),
                    title=c[1].text_input("title column", "productDisplayName"),
                    category=c[2].text_input("category column", "articleType"),
                    colour=c[3].text_input("colour column", "baseColour"),
                )
            submitted = st.form_submit_button("Import")
        if submitted:
            report, unpacked = None, None
            if upload is None:
                st.warning("Choose a CSV file first.")
            elif busy(database.path):
                st.error(failures.busy_line(database.path))
            else:
                images = Path(folder).expanduser() if folder.strip() else None
                if photos_zip is not None:
                    images, unpacked = photos_from_zip(photos_zip.getvalue())
                if photos_zip is None or images is not None:
                    report = run_import(kind, upload, images, columns)
            if report is not None:
                (st.success if report.ok else st.error)(ui.plain(report.summary()) + ".")
                problems = (unpacked.problems if unpacked else []) + report.problems
                if problems:
                    st.dataframe(
                        [{"where": p.where, "problem": p.reason} for p in problems], hide_index=True, width="stretch"
                    )


st.subheader("Browse")
filters = ui.filter_widgets(database, "browse")
text = st.text_input("Search titles, descriptions and brands", key="browse_text")
per_page = 20
rows, total = browse(database, filters, text, 0, 0)
pages = max(1, -(-total // per_page))
c = st.columns([1, 6], vertical_alignment="bottom")  # a compact picker, the count beside it
page = c[0].number_input(f"Page (of {pages})", 1, pages, 1, key=ui.Keys.BROWSE_PAGE)
rows, total = browse(database, filters, text, (page - 1) * per_page, per_page)
c[1].caption(f"{total:,} items")


def facts_table(facts: dict) -> pd.DataFrame:
    """Name -> value as a two-column table (values as text: st.table renders Markdown), shown without a header row."""
    return pd.DataFrame({"": [ui.plain(v) for v in facts.values()]}, index=[ui.plain(k) for k in facts])


def caption(row: BrowseRow) -> str:
    """'Leather tote · 10129', with the category only when the title does not already say it."""
    title, category = row.title or "", row.category or ""
    extra = [category] if category and category.casefold() not in title.casefold() else []
    text = " · ".join(ui.plain(part) for part in ([title, *extra, row.item_id] if title else [row.item_id, *extra]))
    return f"gone · {text}" if row.gone_at else text


ui.grid(rows, caption=caption)

chosen = st.selectbox(
    "Open an item",
    [""] + [r.item_id for r in rows],
    format_func=lambda i: i and f"{i} · {next(r.title for r in rows if r.item_id == i)}",
)
if chosen:
    item = item_detail(database, chosen)
    left, right = st.columns([1, 2])
    photos = [image.path for image in item.images if image.status == "ok"] or [item.image_path]
    for path in photos:
        ui.photo(path, where=left, width="stretch")
    right.subheader(ui.plain(item.title or item.id))
    if item.gone_at:
        right.warning(
            f"Gone since {item.gone_at} UTC: missing from the last synced feed. Its labels are kept; searches, "
            "exports and the API leave it out until a feed lists it again.",
            icon="🚫",
        )
    price = f"{item.price:,.2f} {item.currency or ''}".strip() if item.price is not None else None
    facts = {
        "Brand": item.brand,
        "Category": item.category,
        "Colour": item.colour,
        "Gender": item.gender,
        "Price": price,
        "On sale": {1: "yes", 0: "no"}.get(item.on_sale),
        "In stock": None if item.stock is None else f"{item.stock:,}",
        "Id": item.id,
    }
    right.table(facts_table({k: v for k, v in facts.items() if v not in (None, "")}), hide_header=True)
    attributes = {k: v for k, v in item.attributes.items() if str(v).strip()}
    if attributes:
        right.markdown("**Attributes**")
        right.table(facts_table(attributes), hide_header=True)
    if item.description and item.description != item.title:
        right.caption(ui.plain(item.description))
    right.caption(
        "Look-alikes by " + ", ".join(map(ui.plain, item.methods)) + " (Search page)."
        if item.methods
        else "Not embedded yet."
    )
