"""Label: judge each of a query's top-k results relevant or not, one click each, saved at once."""
import streamlit as st

from core.catalog import item_detail
from core.labels import LabelError, Query, add_label, current_labels, label_counts, next_query
from core.search import SearchError, search
from core.vectors import methods_with_vectors

import ui

database = ui.db()
st.title("Label matches")

embedded = ui.default_first([m for m in methods_with_vectors(database) if any(
    x["name"] == m and x["available"] and x["kind"] == "image" for x in ui.methods())])
if not embedded:
    st.info("Embed the catalog with an image method on the **Methods** page first.")
    st.stop()

c = st.columns([2, 2, 2, 1])
labeler = c[0].text_input("Your name", **ui.remembered(ui.Keys.LABELER))
method = c[1].selectbox("Method", embedded, **ui.remembered(ui.Keys.LABEL_METHOD, embedded))
ORDERS = {"unlabelled first": "unlabelled", "random": "random", "by category": "category"}


def pick_next() -> None:
    """Choose the next query item (read from the state: callbacks run before the page does)."""
    order = ORDERS[st.session_state.get(ui.Keys.LABEL_ORDER, "unlabelled first")]
    category = st.session_state.get(ui.Keys.LABEL_CATEGORY) if order == "category" else None
    st.session_state[ui.Keys.LABEL_QUERY] = next_query(database, order, category)


order = c[2].selectbox("Next query", list(ORDERS), **ui.remembered(ui.Keys.LABEL_ORDER, list(ORDERS)))
k = int(c[3].number_input("k", 1, 20, 10))
if order == "by category":
    from core.filters import distinct_values
    st.selectbox("Category", distinct_values(database, "category"), key=ui.Keys.LABEL_CATEGORY, on_change=pick_next)


if st.session_state.get(ui.Keys.LABEL_QUERY) is None:
    pick_next()
st.button("Next query ▶", on_click=pick_next, shortcut="Right", help="Keyboard: → next query; "
          "Y / N judge the first result not judged yet")
query_id = st.session_state[ui.Keys.LABEL_QUERY]
if query_id is None:
    st.info("No items with photos to label.")
    st.stop()

item = item_detail(database, query_id)
left, right = st.columns([1, 4])
ui.photo(item["image_path"], "Query", where=left)
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


error = st.session_state.pop("label_error", None)
if error:
    right.error(error)
elif not (labeler or "").strip():
    right.warning("Type your name above: every label records who made it.")


def actions(hit: dict, key: str) -> None:
    verdict = judged.get(hit["item_id"])
    a, b = st.columns(2)          # one click each: relevant / not relevant
    a.button("✓ Yes", key=f"yes_{key}", on_click=judge, args=(hit, True), disabled=not labeler,
             type="primary" if verdict is True else "secondary", width="stretch")
    b.button("✗ No", key=f"no_{key}", on_click=judge, args=(hit, False), disabled=not labeler,
             type="primary" if verdict is False else "secondary", width="stretch")


pending = [h for h in hits if h["item_id"] not in judged]
if pending:                       # keyboard: Y / N judge the first result not judged yet
    a, b, _ = right.columns([1, 1, 3])
    a.button(f"✓ Yes to #{pending[0]['rank']}", shortcut="Y", on_click=judge, args=(pending[0], True),
             disabled=not labeler, key="yes_next")
    b.button(f"✗ No to #{pending[0]['rank']}", shortcut="N", on_click=judge, args=(pending[0], False),
             disabled=not labeler, key="no_next")
with right:
    ui.grid(hits, columns=5, caption=ui.caption_with_score, key_prefix="label", actions=actions)
