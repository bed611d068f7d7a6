"""Graded verdict buttons (good / close / wrong, one click or key each) and the Label page's pair queues:
a second opinion, disagreements, the gap that keeps methods from being compared, a snapshot's new results."""

import re

import streamlit as st

from core.catalog.items import item_detail
from core.catalog.vectors import methods_with_vectors
from core.curation.labels import LabelError, Query, add_label
from core.curation.queues import (
    QueuedPair,
    disagreement_queue,
    gap_queue,
    second_opinion_queue,
    snapshot_queue,
)
from core.curation.snapshots import SnapshotError, snapshot_names
from core.curation.verdicts import read_verdicts
from core.team.access import NotAllowed

import ui

# button text, key prefix, grade, keyboard shortcut
VERDICTS = (("✓ Good", "yes", "good", "Y"), ("≈ Close", "close", "close", "M"), ("✗ Wrong", "no", "wrong", "N"))
KEYS_HELP = "Keyboard: Y good, M close (a near miss), N wrong (the first result not judged yet)"
QUEUES = {
    "second opinion: pairs one person judged": "second",
    "disagreements to settle": "disagreements",
    "judge the gap: unjudged results of compared methods": "gap",
    "new in a snapshot: results nobody judged": "snapshot",
}
GAP = next(name for name, queue in QUEUES.items() if queue == "gap")
PAIRS_MODE = "Pairs to judge"  # the Label page's mode that shows these queues
PER_PAGE = 8


def judge(database, about: Query, candidate: str, method: str, rank: int, grade: str, labeler: str) -> None:
    """Store one graded verdict (a click's callback) as this session's person; an error is shown on the next run."""
    try:
        with ui.acting_here():
            add_label(database, about, candidate, method, rank, grade == "good", labeler, grade=grade)
    except (LabelError, NotAllowed) as exc:
        st.session_state["label_error"] = str(exc)


def buttons(
    database, about: Query, candidate: str, method: str, rank: int, labeler: str, current, key: str, compact=False
) -> None:
    """Good / close / wrong for one result, side by side (`compact`: their signs only, the word in the
    tooltip, for a narrow grid column); the current verdict's button is highlighted."""
    for column, (text, prefix, grade, _) in zip(st.columns(3), VERDICTS):
        column.button(
            text.split()[0] if compact else text,
            help=grade if compact else None,
            key=f"{prefix}_{key}",
            on_click=judge,
            args=(database, about, candidate, method, rank, grade, labeler),
            disabled=not labeler,
            type="primary" if current == grade else "secondary",
            width="stretch",
        )


def as_text(text: str) -> str:
    """Text for a markdown element, every markdown sign escaped (a curator's name shows as typed)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~<>$:&])", r"\\\1", text)


def verdict_rule(database) -> None:
    """State which verdict counts when people disagree."""
    st.caption(
        f"The verdict that counts: {as_text(read_verdicts(database).rule())} (`LOOKALIKE_CURATOR` names a curator whose "
        "verdict wins). Every verdict is kept, with who gave it."
    )


def queue(database, labeler: str, k: int) -> None:
    """One of the pair queues, a page of pairs at a time, each judged with one click."""
    chosen = QUEUES[st.selectbox("Order", list(QUEUES), **ui.remembered(ui.Keys.LABEL_QUEUE, list(QUEUES)))]
    total = None
    if chosen == "second":
        pairs = second_opinion_queue(database, labeler, PER_PAGE)
        st.caption("Pairs only one other person judged; their verdict is hidden until you give yours.")
    elif chosen == "disagreements":
        pairs = disagreement_queue(database, labeler, PER_PAGE)
        st.caption("Pairs whose raters disagree; your verdict becomes the latest one.")
    elif chosen == "gap":
        methods = sorted(methods_with_vectors(database))
        compared = st.multiselect("Methods being compared", methods, default=methods, key="label_gap_methods")
        pairs, total = gap_queue(database, compared, k, PER_PAGE)
        st.caption(
            f"The results in the top {k} of these methods, on the queries your team judged, that nobody has "
            "judged yet: judged, they make the methods comparable on the Precision page."
        )
    else:
        names = snapshot_names(database)
        if len(names) < 2:
            st.info("Take two snapshots first: `python -m core evaluate snapshot --method M --name S`.")
            return
        c = st.columns(2)
        first = c[0].selectbox("Before", names, index=len(names) - 2, key="label_snapshot_first")
        second = c[1].selectbox("After", names, index=len(names) - 1, key="label_snapshot_second")
        try:
            pairs, total = snapshot_queue(database, first, second, PER_PAGE)
        except SnapshotError as exc:
            st.error(str(exc))
            return
    if not pairs:
        st.success("Nothing to judge here.")
        return
    if total is not None:
        st.caption(f"{ui.plural(total, 'pair')} to judge in all.")
    for pair in pairs:
        _pair_row(database, pair, labeler)


def _pair_row(database, pair: QueuedPair, labeler: str) -> None:
    query, candidate = item_detail(database, pair.query_key), item_detail(database, pair.candidate_id)
    if query is None or candidate is None:
        return
    left, middle, right = st.columns([1, 1, 3])
    ui.photo(query.image_path, "Query", where=left)
    ui.photo(candidate.image_path, f"#{pair.rank} in {pair.method}", where=middle)
    with right:
        st.text(f"{query.title or query.id}\n→ {candidate.title or candidate.id}")
        if pair.known:
            st.text(pair.known)
        key = f"queue_{pair.query_key}_{pair.candidate_id}"
        buttons(database, Query.item(pair.query_key), pair.candidate_id, pair.method, pair.rank, labeler, None, key)
