"""Every method: kind, whether it can run here, vectors per embeddable item, index state, remedy."""

import pandas as pd
import streamlit as st

from core.search.index import index_status


def show(database, methods: list[dict], counts: dict[str, int], target: dict[str, int]) -> None:
    status = index_status(database)

    def index_state(name: str) -> str:
        if name not in status:
            return "—"
        return status[name]["problem"] or "ready"

    rows = [
        {
            "method": m["name"],
            "kind": m["kind"],
            "ready": m["available"],
            "vectors": f"{counts.get(m['name'], 0)}/{target[m['kind']]}",
            "index": index_state(m["name"]),
            "what it is": m["description"],
            "to enable": m["reason"] or "",
        }
        for m in methods
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
