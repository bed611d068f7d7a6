"""Precision: which method finds what your team calls relevant, from the labels, with intervals."""
import pandas as pd
import streamlit as st

import ui
from core.metrics import precision_from_labels

ui.setup("Precision")
database = ui.db()
st.title("Precision by method")
k = int(st.number_input("k", 1, 50, 10))

figures = precision_from_labels(database, k=k)
if not figures:
    st.info("No labels yet: judge some matches on the **Label** page.")
    st.stop()

table = pd.DataFrame([{
    "method": f["method"], f"P@{k} (labels)": f["precision_at_k"], "95% low": f["ci_low"], "95% high": f["ci_high"],
    "queries": f["queries"], "labels": f["labels"], "unknown": f["unknown"],
    "same category (metadata)": f["metadata_precision"]["category"],
    "same colour (metadata)": f["metadata_precision"]["colour"],
} for f in figures])
st.dataframe(table, hide_index=True, width="stretch", column_config={
    c: st.column_config.NumberColumn(format="%.3f") for c in table.columns if c not in ("method", "queries", "labels", "unknown")})
st.caption("Precision counts only judged results; unjudged ones are 'unknown', not wrong. Two methods differ "
           "clearly when their 95% intervals do not overlap. The metadata columns are the research's automatic "
           "figure over the same queries: the share of results with the query's category or colour.")

chart = table.set_index("method")[[f"P@{k} (labels)", "same category (metadata)"]]
st.bar_chart(chart, stack=False)

st.subheader("By category")
rows = [{"method": f["method"], "category": c, "queries": v["queries"], "labels": v["labels"],
         f"P@{k}": v["precision_at_k"]} for f in figures for c, v in f["by_category"].items()]
st.dataframe(rows, hide_index=True, width="stretch")
