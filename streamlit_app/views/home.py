"""Lookalike home: what is in the catalog, what is ready, and the next step."""

import streamlit as st

from core.catalog.items import stats
from core.curation.labels import label_counts
from core.methods import devices
from core.search.index import index_status

import ui

database = ui.db()
st.title("Lookalike")
st.write("Find look-alike products in your catalog, judge the matches, and export them for the shop.")

figures = stats(database)
cols = st.columns(4)
cols[0].metric("Items", f"{figures.items:,}")
cols[1].metric("Photos ready", f"{figures.images_ok:,}")
cols[2].metric("Photos missing or unreadable", f"{figures.images_bad:,}")
cols[3].metric("Methods embedded", len(figures.vectors))

st.subheader("Methods")
status = index_status(database)
states = {m.name: m.state for m in ui.methods()}
rows = [
    {
        "method": m,
        "state": states.get(m, ""),
        "vectors": n,
        "index": (status[m].problem or "ready") if m in status else "ready",
    }
    for m, n in sorted(figures.vectors.items())
]
if rows:
    st.dataframe(rows, hide_index=True, width="stretch")
for name in [m for m in figures.vectors if states.get(m) == "changed"]:
    st.info(ui.space(name).stale_note())  # re-tuned or retrained: searched with the old vectors until embedded

st.subheader("Next step")
if figures.items == 0:
    st.info("Import a catalog on the **Catalog** page (a Farfetch listings CSV or any product CSV with photos).")
elif not figures.vectors:
    st.info("Embed the catalog with a method on the **Methods** page (start with efficientnet_lite0).")
elif label_counts(database).labels == 0:
    st.info("Look at matches on the **Search** page, then judge some on the **Label** page.")
else:
    st.info("Compare methods on the **Precision** page and export the winner's matches on the **Export** page.")

st.caption(f"Models run on **{ui.plain(devices.describe())}** (change it on the Methods page).")
st.caption(f"Catalog: {ui.plain(ui.db_path().resolve())} · indices, thumbnails and model weights live beside it.")
