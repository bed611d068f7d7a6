"""Precision: which method finds what your team calls relevant, from the verdicts: P@k, nDCG@k and MRR
with intervals, ranked only where the methods were judged enough to compare (panels/evaluation.py)."""

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from core.catalog.vectors import methods_with_vectors
from core.curation.metrics import MethodFigures, evaluate_labels
from core.methods.heads import current_head, tuned_names
from core.methods.tuned import saved_version

import ui
from panels import evaluation

database = ui.db()
st.title("Precision by method")
k = int(st.columns([1, 4])[0].number_input("k: results per query", 1, 50, 10))

found = evaluate_labels(database, k=k)
figures = sorted(found.methods, key=lambda m: (m.rank is None, m.rank or 0, not m.comparable, m.method))
if not figures:
    st.info("No labels yet: judge some matches on the **Label** page.")
    st.stop()

heads = {name: current_head(database, name) for name in tuned_names(database)}
# the version whose vectors the figures come from: a re-tuned method is searched with its old vectors until embedded
measured = {name: saved_version(ui.space(name).searched_version()) or head.version for name, head in heads.items()}


def tuned_version(name: str) -> str:
    """'v2', or 'v1 (v2 not embedded yet)' when the figures come from an earlier version's vectors."""
    latest = heads[name].version
    return f"v{measured[name]}" + (f" (v{latest} not embedded yet)" if measured[name] != latest else "")


table = pd.DataFrame(
    [
        {
            "rank": str(f.rank) if f.rank else "–",  # not comparable, or no common ground
            "method": f.method,
            f"P@{k}": f.figures.precision.value,
            "95% interval": f"{f.figures.precision.low:.3f}–{f.figures.precision.high:.3f}",
            f"nDCG@{k}": f.figures.ndcg.value,
            "MRR": f.figures.mrr.value,
            "judged": f.judged_share,
            "queries": f.figures.queries,
            "labels": f.figures.judged,
            "unknown": f.figures.unknown,
            "same category": f.metadata[0],
            "same colour": f.metadata[1],
            "tuned": tuned_version(f.method) if f.method in heads else "",
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
        "judged": st.column_config.NumberColumn(format="percent"),
        **{
            c: st.column_config.NumberColumn(format=ui.PRECISION_FORMAT)
            for c in (f"P@{k}", f"nDCG@{k}", "MRR", "same category", "same colour")
        },
    },
)
evaluation.fairness(found)
st.caption(
    f"P@{k}: the share of judged results in the top {k} that your team judged good; unjudged ones are "
    "'unknown', not wrong. Two methods differ clearly when their 95% intervals do not overlap. *same "
    "category* / *same colour*: the research's automatic figure over the same queries, the share of results "
    "with the query's category or colour (none for uploaded photos)."
)
if heads:
    st.caption(
        "*tuned*: learnt on the Methods page, over its bases: compare it with them. The figures are for the "
        "version named, whose vectors the searches use. "
        + "; ".join(
            ui.plain(f"{name} {tuned_version(name)} over {' + '.join(head.bases)}") for name, head in heads.items()
        )
        + "."
    )
unjudged = sorted((set(methods_with_vectors(database)) | set(heads)) - {f.method for f in figures})
if unjudged:
    st.caption(
        f"No judged result in the top {k} of: {', '.join(map(ui.plain, unjudged))}. Label their results on the "
        "**Label** page to see them here."
    )


def shown_as(f: MethodFigures) -> str:
    """A method's name on the chart: ranked ones in their order, then the ones not comparable, said so."""
    return f.method if f.comparable else f"{f.method} (not comparable)"


bars = pd.DataFrame(
    [
        {
            "method": shown_as(f),
            "figure": f"P@{k} from labels",
            "precision": f.figures.precision.value,
            "low": f.figures.precision.low,
            "high": f.figures.precision.high,
        }
        for f in figures
    ]
    + [
        {
            "method": shown_as(f),
            "figure": "same category (metadata)",
            "precision": f.metadata[0],
            "low": None,
            "high": None,
        }
        for f in figures
    ]
)
order = [shown_as(f) for f in figures]  # the table's order: by rank, the ones not comparable last
base = alt.Chart(bars).encode(
    x=alt.X("method:N", title=None, sort=order, axis=alt.Axis(labelAngle=0)), xOffset="figure:N"
)
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
                "method": f.method,
                "category": c,
                "queries": v.queries,
                "labels": v.judged,
                f"P@{k}": v.precision.value,
                f"nDCG@{k}": v.ndcg.value,
                "MRR": v.mrr.value,
            }
            for f in figures
            for c, v in sorted(f.by_category.items())
        ]
    ),
    hide_index=True,
    width="stretch",
    column_config={
        c: st.column_config.NumberColumn(format=ui.PRECISION_FORMAT) for c in (f"P@{k}", f"nDCG@{k}", "MRR")
    },
)
evaluation.raters(found)
evaluation.snapshots(database)

CURVE = Path(__file__).resolve().parents[2] / "docs" / "label_curve.png"
if CURVE.exists():
    with st.expander("How much do more labels buy? (benchmark)"):
        st.image(str(CURVE))
        st.caption(
            "How much a tuned method gains as your team judges more results: on 4,000 labelled photos, the share "
            "of its 10 nearest look-alikes with the same type and colour, on items it did not learn from, after "
            "each number of judged pairs; judging the queries the Label page proposes teaches more than judging "
            "random ones (details: docs/benchmarks.md)."
        )
