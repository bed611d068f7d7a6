"""The Precision page's workbench panels: the fair ranking's warning and "judge the gap", per-rater
figures with the raters' agreement, and snapshots side by side."""

import pandas as pd
import streamlit as st

from core.curation.metrics import Evaluation
from core.curation.snapshots import SnapshotError, diff_snapshots, load_snapshot, snapshot_figures, snapshot_names
from core.team.access import Action

import ui
from panels.verdicts import GAP, PAIRS_MODE, as_text


def _judge_the_gap() -> None:
    ui.choose(ui.Keys.LABEL_MODE, PAIRS_MODE)
    ui.choose(ui.Keys.LABEL_QUEUE, GAP)


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    return "" if value is None else f"{value:.3f} ({low:.3f}–{high:.3f})"


def fairness(found: Evaluation) -> None:
    """Say how the methods are ranked, give nDCG's and MRR's intervals, and offer to judge the gap
    when some methods cannot be ranked."""
    with st.expander(f"nDCG@{found.k} and MRR with their 95% intervals, and the common ground"):
        st.table(
            pd.DataFrame(
                [
                    {
                        "method": m.method,
                        f"nDCG@{found.k} (95%)": _interval(
                            m.figures.ndcg.value, m.figures.ndcg.low, m.figures.ndcg.high
                        ),
                        "MRR (95%)": _interval(m.figures.mrr.value, m.figures.mrr.low, m.figures.mrr.high),
                        f"P@{found.k} on common ground": ""
                        if not m.common
                        else _interval(m.common.precision.value, m.common.precision.low, m.common.precision.high),
                        f"nDCG@{found.k} on common ground": ""
                        if not m.common
                        else _interval(m.common.ndcg.value, m.common.ndcg.low, m.common.ndcg.high),
                    }
                    for m in found.methods
                ]
            ).set_index("method")
        )
    st.caption(
        f"*rank*: {found.ranking.rule()}. *judged*: the share of the method's top {found.k} that your team "
        f"judged. A *close* match counts {found.scoring.close_share:g} of a hit in P@{found.k}; nDCG@{found.k} "
        f"gains good {found.scoring.gains['good']:g}, close {found.scoring.gains['close']:g}, wrong "
        f"{found.scoring.gains['wrong']:g}, over the judged results (unjudged ones are unknown, never wrong); MRR: "
        "one over the rank of the first good result. The verdict that counts: " + as_text(found.verdict_rule) + "."
    )
    if found.ranking.not_comparable:
        st.warning(
            f"Not comparable: {', '.join(found.ranking.not_comparable)} (less than "
            f"{found.scoring.min_judged:.0%} of the top {found.k} judged), so not ranked: their figures stand on "
            f"the few results that were judged. {ui.plural(len(found.gap), 'unjudged result')} of the compared "
            "methods would settle it."
        )
        if ui.may(Action.LABEL) and st.button("Judge the gap ▶", on_click=_judge_the_gap, key="judge_gap"):
            st.switch_page("views/label.py")


def raters(found: Evaluation) -> None:
    """Per-rater figures and the agreement on the pairs several raters judged."""
    if len({r.rater for r in found.raters}) < 2:
        return
    st.subheader("By rater")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "rater": r.rater,
                    "method": r.method,
                    "queries": r.figures.queries,
                    "labels": r.figures.judged,
                    f"P@{found.k}": r.figures.precision.value,
                    f"nDCG@{found.k}": r.figures.ndcg.value,
                    "MRR": r.figures.mrr.value,
                }
                for r in found.raters
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(format=ui.PRECISION_FORMAT)
            for c in (f"P@{found.k}", f"nDCG@{found.k}", "MRR")
        },
    )
    a = found.agreement
    if a is None or not a.statistic:
        st.caption("No pair was judged by two people yet: the **Label** page's second-opinion order offers some.")
        return
    name = "Cohen's kappa" if a.statistic == "cohen" else "Fleiss' kappa"
    kappa = "undefined (every verdict the same)" if a.kappa is None else f"{a.kappa:.3f}"
    st.text(
        f"Agreement of {', '.join(a.raters)} on good / close / wrong: {name} {kappa} over {a.shared_pairs} "
        f"pairs judged by two or more; {len(a.disagreements)} disagreements to settle on the Label page."
    )
    if len(a.pairwise) > 1:
        st.dataframe(
            pd.DataFrame(
                [{"raters": f"{p.first} · {p.second}", "pairs": p.pairs, "Cohen's kappa": p.kappa} for p in a.pairwise]
            ),
            hide_index=True,
        )


def snapshots(database) -> None:
    """Every snapshot side by side, under today's verdicts, and the diff of the last two."""
    names = snapshot_names(database)
    if not names:
        return
    st.subheader("Snapshots")
    rows = []
    for name in names:
        taken = load_snapshot(database, name)
        f = snapshot_figures(database, taken)
        judged = f.judged / (len(taken.lists) * taken.k) if taken.lists else 0.0
        rows.append(
            {
                "snapshot": name,
                "method": taken.method,
                "taken": taken.created_at[:16].replace("T", " "),
                "k": taken.k,
                "queries": len(taken.lists),
                "judged": judged,
                "P@k": f.precision.value,
                "nDCG@k": f.ndcg.value,
                "MRR": f.mrr.value,
            }
        )
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config={
            "judged": st.column_config.NumberColumn(format="percent"),
            **{c: st.column_config.NumberColumn(format=ui.PRECISION_FORMAT) for c in ("P@k", "nDCG@k", "MRR")},
        },
    )
    if len(names) >= 2:
        try:
            found = diff_snapshots(database, names[-2], names[-1])
        except SnapshotError as exc:
            st.error(str(exc))
            return
        st.caption(
            f"From {names[-2]} to {names[-1]} (nDCG@k per query, today's verdicts): {len(found.better)} better, "
            f"{len(found.worse)} worse, {found.unchanged} unchanged; {len(found.unjudged)} new results nobody has "
            "judged (Label page, pairs to judge: new in a snapshot). `python -m core evaluate diff` lists them."
        )
