"""Catalog: import listings with photos, browse with filters, open an item."""

import logging
import tempfile
from pathlib import Path

import streamlit as st

from core.catalog.db import busy
from core.catalog.importers import Columns, import_csv, import_farfetch
from core.catalog.items import browse, item_detail, stats
from core.files import failures

import ui

log = logging.getLogger(__name__)
database = ui.db()
st.title("Catalog")

with st.expander("Import a catalog", expanded=stats(database)["items"] == 0):
    with st.form("import"):
        kind = st.radio("Layout", ["Farfetch listings", "Product CSV"], horizontal=True)
        upload = st.file_uploader("CSV file", type=["csv"])
        folder = st.text_input(
            "Photo folder on this machine",
            help="Farfetch: photos named by URL basename; product CSV: <id>.jpg/.png/.webp",
        )
        st.caption("Product CSV column names (defaults fit the Fashion Product Images styles.csv):")
        c = st.columns(4)
        id_col = c[0].text_input("id column", "id")
        title_col = c[1].text_input("title column", "productDisplayName")
        category_col = c[2].text_input("category column", "articleType")
        colour_col = c[3].text_input("colour column", "baseColour")
        submitted = st.form_submit_button("Import")
    if submitted:
        if upload is None:
            st.warning("Choose a CSV file first.")
        elif busy(database.path):
            st.error(failures.busy_line(database.path))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                csv_path = Path(tmp) / "upload.csv"  # the uploaded name is never used as a path
                csv_path.write_bytes(upload.getvalue())
                images = Path(folder).expanduser() if folder.strip() else None
                columns = Columns(id=id_col, title=title_col, category=category_col, colour=colour_col)
                with st.spinner("Importing…"):
                    try:
                        if kind == "Farfetch listings":
                            report = import_farfetch(database, csv_path, images, progress=False)
                        else:
                            report = import_csv(database, csv_path, images, columns, progress=False)
                    except failures.FAILURES + (ValueError, RuntimeError) as exc:  # the CLI's one line
                        log.info("import failed", exc_info=True)
                        report = None
                        st.error(f"Import stopped: {failures.one_line(exc, database.path)}")
            if report is not None:
                (st.success if report.ok else st.error)(
                    f"{report.items} items imported from {report.rows} rows; photos ok {report.images_ok}, "
                    f"not usable {report.images_bad}."
                )
                if report.problems:
                    st.dataframe(
                        [{"where": p.where, "problem": p.reason} for p in report.problems],
                        hide_index=True,
                        width="stretch",
                    )

st.subheader("Browse")
filters = ui.filter_widgets(database, "browse")
text = st.text_input("Search titles, descriptions and brands", key="browse_text")
per_page = 20
rows, total = browse(database, filters, text, 0, 0)
pages = max(1, -(-total // per_page))
page = st.number_input(f"Page (of {pages})", 1, pages, 1, key=ui.Keys.BROWSE_PAGE)
rows, total = browse(database, filters, text, (page - 1) * per_page, per_page)
st.caption(f"{total:,} items")
ui.grid(rows, caption=lambda r: f"{r['title'] or r['id']} · {r['category'] or ''}")

chosen = st.selectbox(
    "Open an item",
    [""] + [r["id"] for r in rows],
    format_func=lambda i: i and f"{i} · {next(r['title'] for r in rows if r['id'] == i)}",
)
if chosen:
    item = item_detail(database, chosen)
    left, right = st.columns([1, 2])
    ui.photo(item["image_path"], where=left)
    right.write(
        {
            k: item[k]
            for k in (
                "id",
                "title",
                "brand",
                "category",
                "colour",
                "gender",
                "price",
                "currency",
                "stock",
                "on_sale",
                "source",
            )
        }
    )
    right.write({"attributes": item["attributes"], "methods with vectors": item["methods"]})
    right.dataframe(item["images"], hide_index=True)
