"""Search: look-alikes of a catalog item, an uploaded photo or a text; compare two methods."""

import streamlit as st

from core.catalog.items import item_cards, item_column
from core.catalog.vectors import item_ids_with_vectors, methods_with_vectors
from core.methods import WeightsMissing
from core.search.queries import SearchError, search

import ui

database = ui.db()
st.title("Search")

embedded = methods_with_vectors(database)
methods = ui.methods()
ready = sorted(  # every method whose vectors exist and that can run here, tuned ones and hybrid included
    (m for m in methods if m["available"] and m["name"] in embedded),
    key=lambda m: ui.default_first([x["name"] for x in methods]).index(m["name"]),
)
others = len(methods) - len(ready)
if not ready:
    st.info("No method has vectors yet: embed the catalog on the **Methods** page first.")
    st.stop()

mode = st.radio("Query", ["Catalog item", "Photo", "Text"], horizontal=True)
query: dict = {}
if mode == "Catalog item":
    names = [m["name"] for m in ready if m["kind"] == "image"] or [m["name"] for m in ready]
    ids = item_ids_with_vectors(database, names[0])
    titles = item_column(database, "title")
    query["item_id"] = st.selectbox("Item", ids, format_func=lambda i: f"{i} · {titles.get(i) or ''}")
elif mode == "Photo":
    photo = ui.uploaded_photo()  # checked before it is shown or searched
    if photo is not None:
        shown, query["image"] = photo
    names = [m["name"] for m in ready if m["kind"] == "image"]
else:
    query["text"] = st.text_input("Describe what you look for", placeholder="e.g. black leather handbag") or None
    names = [m["name"] for m in ready if m["kind"] == "text" or m["text_query"]]

if not names:
    st.warning("No embedded method can take this kind of query yet.")
    st.stop()
c = st.columns([2, 2, 1])
method = c[0].selectbox("Method", names)
compare = c[1].selectbox("Compare with", ["(none)"] + [n for n in names if n != method])
k = c[2].number_input("Results", 1, 50, 10, help="How many look-alikes to show.")
with st.expander("Filters"):
    filters = ui.filter_widgets(database, "search")
    exclude_brand = st.checkbox("Exclude the query's brand")
    if exclude_brand:
        filters["exclude_same_brand"] = True
if others:
    st.page_link(
        "views/methods.py", label=f"{others} more methods need weights, training or embedding: see Methods", icon="⚙️"
    )

if mode == "Catalog item" and query.get("item_id"):
    ui.photo(item_cards(database, [query["item_id"]]).get(query["item_id"], {}).get("image_path"), "Query", 180)
elif mode == "Photo" and "image" in query:
    st.image(shown, caption="Query", width=180)

if not any(v is not None for v in query.values()):
    st.stop()

columns = [method] + ([compare] if compare != "(none)" else [])
panes = st.columns(len(columns))
for pane, name in zip(panes, columns):
    with pane:
        st.subheader(ui.plain(name))
        try:
            with st.spinner(f"Searching with {ui.plain(name)}…"):
                result = search(ui.space(name), k=int(k), filters=filters, **query)
        except (SearchError, WeightsMissing, ValueError) as exc:
            st.error(ui.plain(exc))
            continue
        hits = [h.as_dict() for h in result.results]
        st.session_state[ui.Keys.SEARCH_RESULTS] = {"method": name, "query": query.get("item_id"), "hits": hits}
        for note in result.notes:  # stale vectors, or filters that leave (almost) nothing
            st.info(ui.plain(note[0].upper() + note[1:]))
        ui.grid(hits, columns=5 if len(columns) == 1 else 3, caption=ui.caption_with_score, key_prefix=name)
