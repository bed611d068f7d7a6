"""Every method: kind, whether it is usable now, vectors per embeddable item, index state, next step.

A static table (st.table): every row and column shows on the page, long remedies wrap, nothing
scrolls inside it.
"""

import pandas as pd
import streamlit as st

from core.search.index import index_status

import ui


def show(database, methods: list[dict], counts: dict[str, int], target: dict[str, int]) -> None:
    status = index_status(database)

    def index_state(name: str) -> str:
        if name not in status:
            return "—"
        return status[name]["problem"] or "ready"

    rows = [
        {
            "method": ui.plain(m["name"]),
            "kind": m["kind"],
            "state": m["state"],
            "vectors": f"{counts.get(m['name'], 0)}/{target[m['kind']]}",
            "index": ui.plain(index_state(m["name"])),
            "what it is": m["description"],
            "next step": ui.plain(m["todo"] or ""),
        }
        for m in methods
    ]
    st.table(pd.DataFrame(rows).set_index("method"))
    st.caption(
        "*ready*: searchable now. *changed*: searchable with the vectors of its previous version until it "
        "is embedded again. *not embedded*: can run here; Embed + index it. *missing*: needs weights or "
        "training first, as its next step says."
    )
