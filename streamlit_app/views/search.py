"""Search: look-alikes of a catalog item, an uploaded photo or a text; compare two methods.

Shows the curated list (core/curation/curated.py: what export and the API give), each result with a
badge saying why it is there; a toggle shows the model's list untouched, and "more / less like this"
steer the list (as `search --like / --unlike`).
"""

import streamlit as st

from core.catalog.images import sha256_bytes
from core.catalog.items import item_cards, item_column
from core.catalog.vectors import item_ids_with_vectors, methods_with_vectors
from core.curation import decisions
from core.curation.curated import CuratedHit, curated_search
from core.methods import WeightsMissing
from core.search.queries import SearchError
from core.team.access import Action, NotAllowed

import ui

database = ui.db()
st.title("Search")

embedded = methods_with_vectors(database)
methods = ui.methods()
ready = sorted(  # every method whose vectors exist and that can run here, tuned ones and hybrid included
    (m for m in methods if m.available and m.name in embedded),
    key=lambda m: ui.default_first([x.name for x in methods]).index(m.name),
)
others = len(methods) - len(ready)
if not ready:
    st.info("No method has vectors yet: embed the catalog on the **Methods** page first.")
    st.stop()

mode = st.radio("Query", ["Catalog item", "Photo", "Text"], horizontal=True)
query: dict = {}
if mode == "Catalog item":
    names = [m.name for m in ready if m.kind == "image"] or [m.name for m in ready]
    ids = item_ids_with_vectors(database, names[0])
    titles = item_column(database, "title")
    query["item_id"] = st.selectbox("Item", ids, format_func=lambda i: f"{i} · {titles.get(i) or ''}")
elif mode == "Photo":
    photo = ui.uploaded_photo()  # checked before it is shown or searched
    if photo is not None:
        shown, query["image"] = photo
    names = [m.name for m in ready if m.kind == "image"]
else:
    query["text"] = st.text_input("Describe what you look for", placeholder="e.g. black leather handbag") or None
    names = [m.name for m in ready if m.kind == "text" or m.text_query]


def more_methods() -> None:
    """A link to the Methods page, under the results, when other methods wait there."""
    if others:
        st.page_link(
            "views/methods.py",
            label=f"{others} more methods need weights, training or embedding: see Methods",
            icon="⚙️",
        )


if not names:
    st.warning("No embedded method can take this kind of query yet.")
    more_methods()
    st.stop()
c = st.columns([3, 3, 1.2, 1.5, 1])  # the query's photo in the last slot: the results start within the first screen
method = c[0].selectbox("Method", names)
compare = c[1].selectbox("Compare with", ["(none)"] + [n for n in names if n != method])
k = c[2].number_input("Results", 1, 50, 10, help="How many look-alikes to show.")
curated = c[3].toggle(
    "Curated",
    value=True,
    key=ui.Keys.SEARCH_CURATED,
    help="On: the list the shop gets (pins, the team's verdicts, steered refill, hides, rules). "
    "Off: the model's list untouched.",
)
with st.expander("Filters"):
    filters = ui.filter_widgets(database, "search")
    exclude_brand = st.checkbox("Exclude the query's brand")
    if exclude_brand:
        filters["exclude_same_brand"] = True
if mode == "Catalog item" and query.get("item_id"):
    card = item_cards(database, [query["item_id"]]).get(query["item_id"])
    ui.photo(card.image_path if card else None, "Query", 90, c[4])
elif mode == "Photo" and "image" in query:
    c[4].image(shown, caption="Query", width=90)

if not any(v is not None for v in query.values()):
    more_methods()
    st.stop()

asked = (query.get("item_id"), query.get("text"), sha256_bytes(query["image"]) if "image" in query else None)
steers = st.session_state.get(ui.Keys.SEARCH_STEERS)
if steers is None or steers.query != asked:  # a new query starts unsteered
    steers = st.session_state[ui.Keys.SEARCH_STEERS] = ui.Steers(asked)


def steer(item_id: str, toward: bool) -> None:
    """More (or less) like this: the item joins one list of steers and leaves the other."""
    chosen, other = (steers.like, steers.unlike) if toward else (steers.unlike, steers.like)
    if item_id in other:
        other.remove(item_id)
    if item_id not in chosen:
        chosen.append(item_id)


BADGES = {"pinned": "violet", "accepted": "green", "steered": "blue", "model": "gray"}


def actions(hit: CuratedHit, key: str) -> None:
    st.badge(hit.reason, color=BADGES.get(hit.reason, "gray"))
    if curated:
        more, less = st.columns(2)
        more.button("More like this", key=f"more_{key}", on_click=steer, args=(hit.item_id, True), width="stretch")
        less.button("Less like this", key=f"less_{key}", on_click=steer, args=(hit.item_id, False), width="stretch")


if curated and (steers.like or steers.unlike):
    told = [f"{how} like {', '.join(ids)}" for how, ids in (("more", steers.like), ("less", steers.unlike)) if ids]
    st.caption(ui.plain("Steered: " + "; ".join(told)))
    if st.button("Clear steering"):
        steers.like.clear()
        steers.unlike.clear()
        st.rerun()

columns = [method] + ([compare] if compare != "(none)" else [])
panes = st.columns(len(columns))
for pane, name in zip(panes, columns):
    with pane:
        st.subheader(ui.plain(name))
        try:
            with st.spinner(f"Searching with {ui.plain(name)}…"):
                result = curated_search(
                    ui.space(name),
                    k=int(k),
                    filters=filters,
                    like=steers.like if curated else (),
                    unlike=steers.unlike if curated else (),
                    raw=not curated,
                    **query,
                )
        except (SearchError, WeightsMissing, ValueError) as exc:
            st.error(ui.plain(exc))
            continue
        hits = result.results
        st.session_state[ui.Keys.SEARCH_RESULTS] = {
            "method": name,
            "query": query.get("item_id"),
            "hits": hits,
            "curated": curated,
        }
        for note in result.notes:  # stale vectors, or filters that leave (almost) nothing
            st.info(ui.plain(note))  # as written: a method's name keeps its spelling
        ui.grid(
            hits,
            columns=5 if len(columns) == 1 else 3,
            caption=ui.caption_with_score,
            key_prefix=name,
            actions=actions,
        )


def change(make) -> None:
    """Make a pin, hide or undo as this session's person, in the name typed without sign-in (callbacks
    run before the page does)."""
    try:
        with ui.acting_here():
            done = make((st.session_state.get(ui.Keys.LABELER) or "").strip())
    except (ValueError, NotAllowed) as exc:  # CurationError, RuleError, a role that may not: one line
        st.session_state["curate_note"] = f"error: {exc}"
        return
    st.session_state["curate_note"] = f"#{done.id} {done.subject()}" + (" undone" if done.undoes else "")


if mode == "Catalog item" and curated and ui.may(Action.CURATE):
    with st.expander("Curate this list: pin, hide, undo"):
        st.caption("Every change is kept with your name and the time (`python -m core curate list` shows them).")
        a = st.columns([2, 2, 1, 1])
        if ui.person().signed_in:  # recorded under the signed-in email
            who = ui.person().email
            a[0].caption(f"Changing as **{ui.plain(who)}**")
        else:
            who = a[0].text_input("Your name", **ui.remembered(ui.Keys.LABELER, persist=True))
        shown = [h.item_id for h in st.session_state[ui.Keys.SEARCH_RESULTS]["hits"]]
        chosen = a[1].selectbox("Result", shown, key="curate_item")
        place = a[2].number_input("Place", 1, 1000, 1, key="curate_place")
        item = query["item_id"]
        b = st.columns(3)
        b[0].button(
            "Pin at this place",
            disabled=not who or not chosen,
            on_click=change,
            args=(lambda by: decisions.pin(database, item, chosen, int(place), by),),
        )
        b[1].button(
            "Hide everywhere",
            disabled=not who or not chosen,
            help="Keeps the item out of every list (discontinued, recalled, a bad photo).",
            on_click=change,
            args=(lambda by: decisions.hide(database, chosen, by),),
        )
        b[2].button(
            "Undo the last change",
            disabled=not who,
            on_click=change,
            args=(lambda by: decisions.undo(database, author=by),),
        )
        if note := st.session_state.pop("curate_note", None):
            (st.error if note.startswith("error: ") else st.success)(ui.plain(note.removeprefix("error: ")))


more_methods()
