"""The methods: in a line, which a merchandiser can search with now; for the administrator, every
method's kind, state, vectors per embeddable item, index state, what it is and its next step.

A static table (st.table): every row and column shows on the page, long remedies wrap, nothing
scrolls inside it. No server folder is shown (a remedy names the models folder by its name).
"""

import pandas as pd
import streamlit as st

from core.methods.registry import MethodInfo
from core.search.index import index_status

import ui

READS = {"image": "photos", "text": "titles and descriptions"}


def searchable(methods: list[MethodInfo]) -> None:
    """One line: the methods ready to search, by what they read, and how many more wait."""
    ready = [m for m in methods if m.state in ("ready", "changed")]
    shown = ", ".join(f"**{ui.plain(m.name)}** ({READS[m.kind]})" for m in ready) or "none yet: embed one above"
    waiting = len(methods) - len(ready)
    st.caption(
        f"Searchable now: {shown}."
        + (f" {waiting} more need embedding, weights or training (see For your administrator)." if waiting else "")
    )


def show(database, methods: list[MethodInfo], counts: dict[str, int], target: dict[str, int]) -> None:
    status = index_status(database)

    def index_state(name: str) -> str:
        if name not in status:
            return "—"
        return status[name].problem or "ready"

    rows = [
        {
            "method": ui.plain(m.name),
            "kind": m.kind,
            "state": m.state,
            "vectors": f"{counts.get(m.name, 0)}/{target[m.kind]}",
            "index": ui.plain(index_state(m.name)),
            "what it is": m.description,
            "next step": ui.plain(ui.without_paths(m.todo or "", database.models_dir, database.data_dir)),
        }
        for m in methods
    ]
    st.table(pd.DataFrame(rows).set_index("method"))
    st.caption(
        "*ready*: searchable now. *changed*: searchable with the vectors of its previous version until it "
        "is embedded again. *not embedded*: can run here; Embed + index it. *missing*: needs weights or "
        "training first, as its next step says."
    )
