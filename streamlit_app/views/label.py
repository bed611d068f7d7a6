"""Label: judge each of a query's top-k results good, close or wrong, one click each, saved at once.

The query is a catalog item or an uploaded photo (its labels are keyed by the photo's sha256); or
pairs from a queue (a second opinion, disagreements, the gap between compared methods, a snapshot's
new results: panels/verdicts.py). For an
item, the model's list is followed by the steered refill: the items the curated list
(core/curation/curated.py) puts in the places the rejected ones left, so judging goes on where it helps.
"""

from datetime import datetime

import streamlit as st

from core.catalog.images import sha256_bytes
from core.catalog.items import item_detail
from core.catalog.vectors import methods_with_vectors
from core.curation.curated import curated_search
from core.curation.labels import Query, current_grades, current_judges, current_labels, label_counts, next_query
from core.curation.suggest import SuggestError, suggest_queries
from core.search.queries import Hit, SearchError, search

import ui
from panels import verdicts

database = ui.db()
st.title("Label matches")

embedded = ui.default_first(
    [
        m
        for m in methods_with_vectors(database)
        if any(x.name == m and x.available and x.kind == "image" for x in ui.methods())
    ]
)
if not embedded:
    st.info("Embed the catalog with an image method on the **Methods** page first.")
    st.stop()

MODES = ["Catalog item", "Uploaded photo", verdicts.PAIRS_MODE]
ORDERS = {
    "suggested: teaches most": "suggested",
    "unlabelled first": "unlabelled",
    "random": "random",
    "by category": "category",
}
mode = st.radio("Query", MODES, horizontal=True, **ui.remembered(ui.Keys.LABEL_MODE, MODES))
c = st.columns([2, 2, 2, 1])
person = ui.person()
if person.signed_in:  # every verdict is recorded under the signed-in email, never a typed name
    labeler = person.email
    c[0].caption(f"Judging as **{ui.plain(person.email)}**")
else:
    labeler = c[0].text_input(
        "Your name",
        **ui.remembered(ui.Keys.LABELER, persist=True),
        help="Remembered on this computer, beside the catalog.",
    )
method = c[1].selectbox("Method", embedded, **ui.remembered(ui.Keys.LABEL_METHOD, embedded))
k = int(c[3].number_input("Results", 1, 20, 10, help="How many of the query's look-alikes to judge."))


SUGGESTIONS = 20  # worked out at once and kept for the session: one pass over the catalog serves 20 queries
POOL = 2000  # unjudged items they are chosen among (a second or two, whatever the catalog's size)


def suggested() -> str | None:
    """The unjudged item whose judgements would teach the chosen method most (`labels suggest`);
    None, with a note, when there is nothing to suggest."""
    chosen = st.session_state.get(ui.Keys.LABEL_METHOD) or embedded[0]
    kept = st.session_state.get("label_suggestions", {})
    queue = [i for i in kept.get(chosen, []) if not current_labels(database, Query.item(i))]
    if not queue:
        try:
            queue = [s.item_id for s in suggest_queries(database, chosen, n=SUGGESTIONS, pool=POOL)]
        except SuggestError as exc:
            st.session_state["label_note"] = f"No suggestion ({exc}): showing unlabelled items instead."
            return None
    st.session_state["label_suggestions"] = {chosen: queue[1:]}
    return queue[0] if queue else None


def pick_next() -> None:
    """Choose the next query item (read from the state: callbacks run before the page does)."""
    order = ORDERS[st.session_state.get(ui.Keys.LABEL_ORDER, next(iter(ORDERS)))]
    category = st.session_state.get(ui.Keys.LABEL_CATEGORY) if order == "category" else None
    chosen = suggested() if order == "suggested" else None
    st.session_state[ui.Keys.LABEL_QUERY] = chosen or next_query(database, order, category)


if mode == verdicts.PAIRS_MODE:
    if not (labeler or "").strip():
        st.warning("Type your name above: every label records who made it.")
    if error := st.session_state.pop("label_error", None):
        st.error(error)
    verdicts.queue(database, labeler, k)
    verdicts.verdict_rule(database)
    st.stop()
elif mode == "Catalog item":
    order = c[2].selectbox(
        "Next query",
        list(ORDERS),
        **ui.remembered(ui.Keys.LABEL_ORDER, list(ORDERS)),
        help="Suggested: an item whose titles agree only partly with its current look-alikes (the method is "
        "unsure there, and the item is not an odd one out), so judging it teaches a learnt method most "
        "(as `python -m core labels suggest`).",
    )
    if order == "by category":
        from core.catalog.filters import distinct_values

        st.selectbox("Category", distinct_values(database, "category"), key=ui.Keys.LABEL_CATEGORY, on_change=pick_next)
    if st.session_state.get(ui.Keys.LABEL_QUERY) is None:
        pick_next()
    if note := st.session_state.pop("label_note", None):
        st.caption(ui.plain(note))
    st.button(
        "Next query ▶",
        on_click=pick_next,
        shortcut="Right",
        help=f"Keyboard: → next query; {verdicts.KEYS_HELP}",
    )
    query_id = st.session_state[ui.Keys.LABEL_QUERY]
    if query_id is None:
        st.info("No items with photos to label.")
        st.stop()
    item = item_detail(database, query_id)
    left, right = st.columns([1, 4])
    ui.photo(item.image_path, "Query", where=left)
    left.caption(f"{ui.plain(item.title)} · {ui.plain(item.category or '')}")
    query, request = Query.item(query_id), {"item_id": query_id}
else:
    photo = ui.uploaded_photo("A shopper's photo (JPEG, PNG, WebP or AVIF)", key=ui.Keys.LABEL_UPLOAD)
    if photo is None:
        st.caption(
            "Its results are labelled against the photo's content: the same photo uploaded again "
            f"shows its labels. {verdicts.KEYS_HELP}."
        )
        st.stop()
    shown, data = photo
    left, right = st.columns([1, 4])
    query, request = Query.upload(sha256_bytes(data)), {"image": data}
    uploaded_at = st.session_state.setdefault(ui.Keys.UPLOAD_TIMES, {}).setdefault(query.key, datetime.now())
    left.image(shown, caption=f"Your photo, uploaded at {uploaded_at:%H:%M} on {uploaded_at:%d %b %Y}", width="stretch")

try:
    space = ui.space(method)  # looked up once: both lists below share its model and vectors
    hits = search(space, k=k, **request).results
    shown_ids = {h.item_id for h in hits}
    refill = (
        [
            h
            for h in curated_search(space, k=k, **request).results
            if h.reason == "steered" and h.item_id not in shown_ids
        ]
        if query.kind == "item"
        else []
    )
except SearchError as exc:
    right.error(ui.plain(exc))
    st.stop()
judged = current_grades(database, query)
judges = current_judges(database, query)
done = sum(1 for h in hits if h.item_id in judged)
right.progress(
    done / max(1, len(hits)),
    text=f"{done} of {len(hits)} judged for this query · {ui.plural(label_counts(database).labels, 'label')} "
    "in the catalog",
)


error = st.session_state.pop("label_error", None)
if error:
    right.error(ui.plain(error))
elif not (labeler or "").strip():
    right.warning("Type your name above: every label records who made it.")


def actions(hit: Hit, key: str) -> None:  # one click each: good / close / wrong
    verdicts.buttons(
        database, query, hit.item_id, method, hit.rank, labeler, judged.get(hit.item_id), key, compact=True
    )
    if hit.item_id in judges:  # who judged what
        st.caption(f"{judged[hit.item_id]} · {ui.plain(judges[hit.item_id])}")


pending: list[Hit] = [h for h in [*hits, *refill] if h.item_id not in judged]
if pending:  # keyboard: Y / M / N judge the first result not judged yet
    columns = right.columns([1, 1, 1, 2])
    for column, (text, name, grade, shortcut) in zip(columns, verdicts.VERDICTS):
        column.button(
            f"{text} to #{pending[0].rank}",
            shortcut=shortcut,
            on_click=verdicts.judge,
            args=(database, query, pending[0].item_id, method, pending[0].rank, grade, labeler),
            disabled=not labeler,
            key=f"{name}_next",
        )
with right:
    ui.grid(hits, columns=5, caption=ui.caption_with_score, key_prefix="label", actions=actions)
    verdicts.verdict_rule(database)
    if refill:
        st.subheader("Steered refill")
        st.caption(
            "What the shop now shows in the places of the rejected look-alikes: re-ranked toward the accepted "
            "ones and away from the rejected (their number is their place in the curated list)."
        )
        ui.grid(refill, columns=5, caption=ui.caption_with_score, key_prefix="refill", actions=actions)
