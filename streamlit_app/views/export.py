"""Export: similar-item CSV for the shop, and the team's labels as CSV."""

import logging
import sqlite3
import tempfile
import time
from pathlib import Path

import streamlit as st

from core.catalog.items import missing_photos
from core.catalog.vectors import methods_with_vectors
from core.curation.export import export_similar
from core.curation.labels import export_labels, import_labels
from core.files.failures import one_line
from core.files.output_path import OutputRefused
from core.team.access import Action

import ui

log = logging.getLogger(__name__)
database = ui.db()
st.title("Export")

st.subheader("Similar items")
embedded = ui.default_first(list(methods_with_vectors(database)))
if not embedded:
    st.info("Embed the catalog with a method on the **Methods** page first.")
else:
    c = st.columns([2, 1, 2])
    method = c[0].selectbox("Method", embedded)
    k = int(c[1].number_input("Results per item", 1, 50, 10, help="How many look-alikes of each item."))
    only_relevant = c[2].checkbox("Only pairs marked relevant")
    with st.expander("Filters"):
        filters = ui.filter_widgets(database, "export")
    if st.button("Export CSV", type="primary"):
        out = database.exports_dir / f"similar_{method}_top{k}_{time.strftime('%Y%m%d-%H%M%S')}.csv"
        bar = st.progress(0.0, text="Exporting…")
        try:
            rows = export_similar(
                ui.space(method),
                k,
                out,
                filters=filters,
                only_relevant=only_relevant,
                progress=False,
                on_progress=lambda d, t: bar.progress(d / max(t, 1), text=f"{d}/{t} items"),
            )
        except (OSError, OutputRefused, sqlite3.Error) as exc:
            log.exception("export to %s failed", out)  # the server's path: in the log only
            bar.empty()
            st.error(
                f"The export could not be written: {ui.plain(ui.without_paths(one_line(exc, database.path), out))}."
            )
        else:
            bar.progress(1.0, text=f"{rows:,} rows ready: {out.name}")
            st.session_state[ui.Keys.EXPORT_FILE] = str(out)
            gone = missing_photos(database)
            if gone:
                st.warning(
                    f"{len(gone):,} items' photos were deleted or moved since import (e.g. item {ui.plain(gone[0])}): their "
                    "image_file cells are empty. Import the catalog again to refresh."
                )
    exported = st.session_state.get(ui.Keys.EXPORT_FILE)
    if exported and Path(exported).exists():
        st.download_button(
            "Download similar-items CSV", Path(exported).read_bytes(), Path(exported).name, "text/csv", type="primary"
        )

st.subheader("Labels")
left, right = st.columns(2)
with left:
    if st.button("Export labels (CSV)", help="Every verdict with who gave it and when, as `labels export` writes it."):
        with tempfile.TemporaryDirectory() as tmp:  # an export, so it goes in the activity: on a click only
            count = export_labels(database, Path(tmp) / "labels.csv")
            st.session_state[ui.Keys.LABELS_FILE] = (count, (Path(tmp) / "labels.csv").read_bytes())
    if exported := st.session_state.get(ui.Keys.LABELS_FILE):
        st.download_button(f"Download all {exported[0]} labels (CSV)", exported[1], "labels.csv", "text/csv")
with right:
    upload = st.file_uploader("Merge a labels CSV from a colleague", type=["csv"]) if ui.may(Action.IMPORT) else None
    if upload is not None and st.button("Import labels"):
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "labels.csv"  # the uploaded name is never used as a path
                path.write_bytes(upload.getvalue())
                report = import_labels(database, path)
        except (OSError, sqlite3.Error) as exc:
            log.exception("labels import failed")
            st.error(f"The labels could not be imported: {ui.plain(ui.without_paths(one_line(exc, database.path)))}.")
        else:
            st.success(
                f"{report.items} new labels ({report.duplicates} already present, {len(report.problems)} rejected)"
            )
            if report.problems:
                st.dataframe([{"where": p.where, "problem": p.reason} for p in report.problems], hide_index=True)
