"""Precision: which method finds what your team calls relevant, from the labels, with intervals."""

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from core.catalog.vectors import methods_with_vectors
from core.curation.metrics import precision_from_labels
from core.methods.heads import current_head, tuned_names

import ui

database = ui.db()
st.title("Precision by method")
k = int(st.columns([1, 4])[0].number_input("k: results per query", 1, 50, 10))

figures = precision_from_labels(database, k=k)
if not figures:
    st.info("No labels yet: judge some matches on the **Label** page.")
    st.stop()

heads = {name: current_head(database, name) for name in tuned_names(database)}
table = pd.DataFrame(
    [
        {
            "method": f["method"],
            f"P@{k}": f["precision_at_k"],
            "95% interval": f"{f['ci_low']:.3f}–{f['ci_high']:.3f}",
            "queries": f["queries"],
            "labels": f["labels"],
            "unknown": f["unknown"],
            "same category": f["metadata_precision"]["category"],
            "same colour": f["metadata_precision"]["colour"],
            "tuned": f"v{heads[f['method']].version}" if f["method"] in heads else "",
        }
        for f in figures
    ]
)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    height="content",
    column_config={
        c: st.column_config.NumberColumn(format=ui.PRECISION_FORMAT) for c in (f"P@{k}", "same category", "same colour")
    },
)
st.caption(
    f"P@{k}: the share of judged results in the top {k} that your team marked relevant; unjudged ones are "
    "'unknown', not wrong. Two methods differ clearly when their 95% intervals do not overlap. *same "
    "category* / *same colour*: the research's automatic figure over the same queries, the share of results "
    "with the query's category or colour (none for uploaded photos)."
)
if heads:
    st.caption(
        "*tuned*: learnt on the Methods page, over its bases: compare it with them. "
        + "; ".join(ui.plain(f"{name} v{head.version} over {' + '.join(head.bases)}") for name, head in heads.items())
        + "."
    )
unjudged = sorted((set(methods_with_vectors(database)) | set(heads)) - {f["method"] for f in figures})
if unjudged:
    st.caption(
        f"No judged result in the top {k} of: {', '.join(map(ui.plain, unjudged))}. Label their results on the "
        "**Label** page to see them here."
    )

bars = pd.DataFrame(
    [
        {
            "method": f["method"],
            "figure": f"P@{k} from labels",
            "precision": f["precision_at_k"],
            "low": f["ci_low"],
            "high": f["ci_high"],
        }
        for f in figures
    ]
    + [
        {
            "method": f["method"],
            "figure": "same category (metadata)",
            "precision": f["metadata_precision"]["category"],
            "low": None,
            "high": None,
        }
        for f in figures
    ]
)
base = alt.Chart(bars).encode(x=alt.X("method:N", title=None, axis=alt.Axis(labelAngle=0)), xOffset="figure:N")
chart = base.mark_bar().encode(
    y=alt.Y("precision:Q", scale=alt.Scale(domain=[0, 1]), title=f"precision@{k}"),
    color=alt.Color("figure:N", title=None, legend=alt.Legend(orient="bottom")),
    tooltip=["method", "figure", alt.Tooltip("precision:Q", format=".3f")],  # as ui.PRECISION_FORMAT
)
intervals = (
    base.transform_filter("isValid(datum.low)").mark_rule(strokeWidth=2, color="#2b2b2b").encode(y="low:Q", y2="high:Q")
)
st.altair_chart(chart + intervals, width="stretch")
st.caption("Bars: precision from your labels, with its 95% interval (black line), beside the metadata figure.")

st.subheader("By category of the query")
st.dataframe(
    pd.DataFrame(
        [
            {
                "method": f["method"],
                "category": c,
                "queries": v["queries"],
                "labels": v["labels"],
                f"P@{k}": v["precision_at_k"],
            }
            for f in figures
            for c, v in f["by_category"].items()
        ]
    ),
    hide_index=True,
    width="stretch",
    column_config={f"P@{k}": st.column_config.NumberColumn(format=ui.PRECISION_FORMAT)},
)

CURVE = Path(__file__).resolve().parents[2] / "docs" / "label_curve.png"
if CURVE.exists():
    with st.expander("How much do more labels buy? (benchmark)"):
        st.image(str(CURVE))
        st.caption(
            "Measured on 4,000 labelled photos with simulated judges (same type and colour): the held-out "
            "type+colour P@10 of learnt signal weights after N judged pairs, for queries proposed by "
            "`labels suggest` and for random ones (benchmarks/suggest_bench.py, docs/benchmarks.md)."
        )
