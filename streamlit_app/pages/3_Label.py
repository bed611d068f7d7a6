"""Label: judge each of a query's top-k results relevant or not, one click each, saved at once."""
import streamlit as st

import ui
from core.catalog import item_detail
from core.labels import LabelError, Query, add_label, current_labels, label_counts, next_query
from core.search import SearchError, search
from core.vectors import methods_with_vectors

ui.setup("Label")
database = ui.db()
st.title("Label matches")

embedded = ui.default_first([m for m in methods_with_vectors(database) if any(
    x["name"] == m and x["available"] and x["kind"] == "image" for x in ui.methods(str(ui.db_path())))])
if not embedded:
    st.info("Embed the catalog with an image method on the **Methods** page first.")
    st.stop()

c = st.columns([2, 2, 2, 1])
labeler = c[0].text_input("Your name", key=ui.Keys.LABELER)
method = c[1].selectbox("Method", embedded, key=ui.Keys.LABEL_METHOD)
order = c[2].selectbox("Next query", ["unlabelled first", "random", "by category"])
k = int(c[3].number_input("k", 1, 20, 10))
category = None
if order == "by category":
    from core.filters import distinct_values
    category = st.selectbox("Category", distinct_values(database, "category"))


def pick_next() -> None:
    mode = {"unlabelled first": "unlabelled", "random": "random", "by category": "category"}[order]
    st.session_state[ui.Keys.LABEL_QUERY] = next_query(database, mode, category)


if st.session_state.get(ui.Keys.LABEL_QUERY) is None:
    pick_next()
st.button("Next query ▶", on_click=pick_next)
query_id = st.session_state[ui.Keys.LABEL_QUERY]
if query_id is None:
    st.info("No items with photos to label.")
    st.stop()

item = item_detail(database, query_id)
left, right = st.columns([1, 4])
if item["image_path"]:
    left.image(ui.thumb(item["image_path"]), caption="Query")
left.caption(f"{item['title']} · {item['category'] or ''}")

try:
    hits = [h.as_dict() for h in search(database, method, item_id=query_id, k=k).results]
except SearchError as exc:
    right.error(str(exc))
    st.stop()
judged = current_labels(database, Query.item(query_id))
done = sum(1 for h in hits if h["item_id"] in judged)
right.progress(done / max(1, len(hits)), text=f"{done} of {len(hits)} judged for this query · "
               f"{label_counts(database)['labels']} labels in the catalog")


def judge(hit: dict, relevant: bool) -> None:
    try:
        add_label(database, Query.item(query_id), hit["item_id"], method, hit["rank"], relevant, labeler)
    except LabelError as exc:
        st.session_state["label_error"] = str(exc)


if st.session_state.pop("label_error", None) or not (labeler or "").strip():
    right.warning("Type your name above: every label records who made it.")


def actions(hit: dict, key: str) -> None:
    verdict = judged.get(hit["item_id"])
    a, b = st.columns(2)          # one click each: relevant / not relevant
    a.button("✓ Yes", key=f"yes_{key}", on_click=judge, args=(hit, True), disabled=not labeler,
             type="primary" if verdict is True else "secondary", width="stretch")
    b.button("✗ No", key=f"no_{key}", on_click=judge, args=(hit, False), disabled=not labeler,
             type="primary" if verdict is False else "secondary", width="stretch")


with right:
    ui.grid(hits, columns=5, caption=ui.caption_with_score, key_prefix="label", actions=actions)
