"""Tune a method: pick bases, targets and labels, learn in the background, show base against tuned."""

import pandas as pd
import streamlit as st

from core.catalog.db import open_catalog
from core.curation.evaluate import grouping_fields
from core.curation.tuning import TuneError, TuneResult, check_name, tune
from core.methods import devices
from core.methods.heads import tuned_names
from core.methods.registry import MethodInfo

import ui

INTRO = (
    "A tuned method learns how much each of its bases counts (image methods, and text methods that read "
    "titles and descriptions), and the catalog's brand, gender and price where it has them, and, where it "
    "helps, a small map over all their vectors, so that items sharing the chosen catalog fields (targets), "
    "and results your team judged relevant, come closer. Learnt from fields, it also asks what the items it "
    "learnt from that look most like an item are (votes), so items whose fields are blank find their peers. "
    "An uploaded photo is searched by its deep image bases only. It is checked on about a fifth of the "
    "items, which it never sees while learning, and saved only if it does at least as well as its bases "
    "there (or with Force)."
)


def tune_job(path, device: str, name: str, bases: list[str], targets: list[str], use_labels: bool, force: bool):
    def work(job):
        own = open_catalog(path)
        job.message = "reading the base vectors"
        with devices.placed(device):
            result = tune(
                own,
                name,
                bases,
                targets,
                use_labels=use_labels,
                force=force,
                progress=False,
                on_progress=lambda epoch, total: job.progress(epoch, total, f"epoch {epoch}"),
            )
        job.message = result.reason
        return result

    return work


def show(database, methods: list[MethodInfo], counts: dict[str, int], device: str) -> None:
    st.subheader("Tune a method")
    st.caption(INTRO)
    tuned = tuned_names(database)
    bases_offered = ui.default_first(
        [m.name for m in methods if m.kind in ("image", "text") and counts.get(m.name) and m.name not in tuned]
    )
    c = st.columns(2)
    # select_all=False: typing "category" and Enter picks category, not every field whose name holds it
    bases = c[0].multiselect(
        "Bases (image and text methods with vectors)", bases_offered, key="tune_bases", select_all=False
    )
    fields = grouping_fields(database)
    targets = c[1].multiselect(
        "Targets (catalog fields look-alikes share)", fields, key="tune_targets", select_all=False
    )
    c = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
    name = c[0].text_input("Name of the tuned method", key="tune_name", placeholder="e.g. shape_colour").strip()
    use_labels = c[1].checkbox(
        "Use labels", key="tune_labels", help="Learn from the relevance labels of catalog-item queries too."
    )
    force = c[2].checkbox(
        "Force",
        key="tune_force",
        help="Save it even if it does worse than its bases on the items it did not learn from.",
    )
    if c[3].button("Tune", type="primary", disabled=not (bases and (targets or use_labels) and name)):
        try:
            check_name(name)
            ui.jobs().start(f"tune {name}", tune_job(ui.db_path(), device, name, bases, targets, use_labels, force))
            st.rerun()
        except TuneError as exc:
            st.error(ui.plain(exc))


def tune_table(result: TuneResult) -> pd.DataFrame:
    """Base vs tuned, one row per measure, from a TuneResult's validation figures."""
    rows = []
    for notion, m in result.metrics.items():
        measure = f"of the 10 nearest, the share with the same {' and '.join(notion.split(','))}"
        rows += [
            {"measure": measure, "over": over, "base": base, "tuned": tuned}
            for base, tuned, over in (
                (m.base_held_out, m.tuned_held_out, "items it did not learn from, among themselves"),
                (m.base_catalog, m.tuned_catalog, "items it did not learn from, in the whole catalog"),
            )
        ]
    if (held := result.labels) is not None:
        over = f"labels it did not learn from: {held.queries} queries, {held.pairs} pairs"
        rows += [
            {"measure": what, "over": over, "base": base, "tuned": tuned}
            for base, tuned, what in (
                (held.base_auc, held.tuned_auc, "how often a relevant result ranks above one that is not"),
                (held.base_judged_p10, held.tuned_judged_p10, "of the 10 nearest judged, the share relevant"),
            )
        ]
    table = pd.DataFrame(rows, columns=["measure", "over", "base", "tuned"]).astype({"base": float, "tuned": float})
    return table.assign(change=table["tuned"] - table["base"])


NAMES = {  # what a merchandiser calls each signal
    "head": "all of them, blended as it learnt",
    "votes": "what similar labelled items are",
    "same_brand": "same brand",
    "same_gender": "same gender",
    "price_ratio": "similar price",
}
READS = {"colour": "colours of the photo", "text": "title and description words", "hybrid": "look and colours"}


def signal_name(signal: str, families: dict[str, str]) -> str:
    """A signal in a merchandiser's words: 'look of the photo (efficientnet_lite0)', 'colours of the
    photo (color_hist)', 'title and description words (minilm)', 'same brand', ...; `families`: method -> family."""
    if signal in NAMES:
        return NAMES[signal]
    if signal.startswith("votes_"):
        return f"what similar labelled items are, by the look of the photo ({signal.removeprefix('votes_')})"
    return f"{READS.get(families.get(signal, ''), 'look of the photo')} ({signal})"


SIGNALS = {
    "head": "the learnt map over all the bases' vectors",
    "votes": "the target values of the 20 items it learnt from that the map finds nearest",
    "same_brand": "both items have the same brand",
    "same_gender": "both items have the same gender",
    "price_ratio": "how close the two prices are (1 when equal, 0 at about 32 times)",
}


def _described(signal: str) -> str:
    if signal.startswith("votes_"):
        return f"the target values of the 20 items it learnt from that look nearest by {signal[len('votes_') :]}"
    return f"the {signal} method's vectors"


def weights_table(result: TuneResult, families: dict[str, str]) -> pd.DataFrame:
    """What was learnt: each signal (in people's words) with its weight for item queries and for photo
    queries, and what it is."""
    item, photo = result.signal_weights.item, result.signal_weights.photo
    return pd.DataFrame(
        {
            "signal": [signal_name(s, families) for s in item],
            "weight (item queries)": list(item.values()),
            "weight (photo queries)": [photo.get(s, 0.0) for s in item],
            "what it is": [SIGNALS.get(s) or _described(s) for s in item],
        }
    )


def show_result(job) -> None:
    """A finished tuning job's learnt weights, base-against-tuned table and what to do next."""
    result = job.result
    if not isinstance(result, TuneResult):
        return
    if result.signal_weights.item:
        families = {m.name: m.family for m in ui.methods()}
        st.dataframe(weights_table(result, families), hide_index=True, width="stretch")
    st.dataframe(
        tune_table(result),
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(format="%+.3f" if c == "change" else "%.3f")
            for c in ("base", "tuned", "change")
        },
    )
    st.caption(
        f"{result.name} over {' + '.join(result.bases)}: learnt from {result.items_trained} items and "
        f"{result.label_pairs_trained} label pairs, checked on {result.items_validated} other items and "
        f"{result.label_pairs_held_back} other label pairs; {result.epochs} epochs (best {result.best_epoch}), "
        f"{result.seconds:.1f} s."
    )
    if not result.saved:
        st.warning(
            f"{ui.plain(result.name)} was {ui.plain(result.reason)}. Tick Force to keep it anyway, or try other bases or targets."
        )
        return
    st.info(
        f"Saved {result.name} version {result.version}. Next: **Embed + index** {result.name} above, then "
        "compare it with its bases on the Search, Label and Precision pages."
    )
