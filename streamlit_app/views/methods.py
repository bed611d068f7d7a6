"""Methods: weights status, embed and index each method, train the autoencoder, tune a method."""

import pandas as pd
import streamlit as st

from core.catalog.db import open_catalog
from core.catalog.vectors import embeddable_count, methods_with_vectors
from core.curation.evaluate import grouping_fields
from core.curation.tuning import TuneError, TuneResult, check_name, tune
from core.engines.prepare import prepare_method
from core.methods import devices
from core.methods.autoencoder import train
from core.methods.heads import tuned_names
from core.search.index import index_status

import ui

database = ui.db()
st.title("Methods")
path = ui.db_path()
methods = ui.methods()
counts = methods_with_vectors(database)
status = index_status(database)
target = {kind: embeddable_count(database, kind) for kind in ("image", "text")}

st.dataframe(
    pd.DataFrame(
        [
            {
                "method": m["name"],
                "kind": m["kind"],
                "ready": m["available"],
                "vectors": f"{counts.get(m['name'], 0)}/{target[m['kind']]}",
                "index": ("ready" if not status[m["name"]]["problem"] else status[m["name"]]["problem"])
                if m["name"] in status
                else "—",
                "what it is": m["description"],
                "to enable": m["reason"] or "",
            }
            for m in methods
        ]
    ),
    hide_index=True,
    width="stretch",
)


def embed_and_index(method: str):
    def work(job):
        own = open_catalog(path)  # a job thread gets its own connection
        job.message = "embedding, then indexing"
        report = prepare_method(own, method, on_progress=job.progress)
        job.message = f"{report.embedded} embedded, {report.failed} skipped"
        return report

    return work


st.subheader("Embed and index")
device = st.selectbox(
    "Device",
    devices.CHOICES,
    index=devices.CHOICES.index(devices.configured()),
    **ui.remembered(ui.Keys.DEVICE, list(devices.CHOICES)),
    help="auto: a CUDA GPU when torch sees one, else the CPU. Applies to every job of this app.",
)
try:
    devices.select(device)
    st.caption(f"Torch models run on {devices.describe()}.")
except ValueError as exc:
    devices.select("auto")
    st.error(f"{exc}. Using {devices.describe()} instead.")
ready = [m["name"] for m in methods if m["available"]]
running = {j.name for j in ui.jobs().running()}
kinds = {m["name"]: m["kind"] for m in methods}
partial = [
    f"{n} ({counts[n]}/{target[kinds[n]]})"
    for n in ready
    if 0 < counts.get(n, 0) < target[kinds[n]] and f"embed {n}" not in running
]
if partial:
    st.warning(
        "Partly embedded (a job stopped, or items were added): "
        + ", ".join(partial)
        + ". Embed + index carries on where it stopped."
    )
c = st.columns([3, 1])
chosen = c[0].selectbox("Method", ready, key="embed_method")
if c[1].button("Embed + index", type="primary"):
    ui.jobs().start(f"embed {chosen}", embed_and_index(chosen))
    st.rerun()  # show the progress bar at once

st.subheader("Autoencoder")
epochs = int(st.number_input("Epochs", 1, 100, 10))


def train_job(job):
    own = open_catalog(path)

    def on_epoch(epoch, total, loss):
        job.history.append(loss)
        job.progress(epoch, total, f"loss {loss:.5f}")

    train(own, epochs=epochs, progress=False, on_epoch=on_epoch)
    job.message = "trained; embed it above"


if st.button("Train autoencoder"):
    ui.jobs().start("train autoencoder", train_job)
    st.rerun()


st.subheader("Tune a method")
st.caption(
    "A tuned method learns how much each of its bases counts (image methods, and text methods that read "
    "titles and descriptions) and, where it helps, a small map over the image vectors, so that items "
    "sharing the chosen catalog fields (targets), and results your team judged relevant, come closer. "
    "An uploaded photo is searched by its deep image bases only. It is checked on about a fifth of the "
    "items, which it never sees while learning, and saved only if it does at least as well as its bases "
    "there (or with Force)."
)
tuned = tuned_names(database)
bases_offered = ui.default_first(
    [m["name"] for m in methods if m["kind"] in ("image", "text") and counts.get(m["name"]) and m["name"] not in tuned]
)
c = st.columns(2)
bases = c[0].multiselect("Bases (image and text methods with vectors)", bases_offered, key="tune_bases")
targets = c[1].multiselect("Targets (catalog fields look-alikes share)", grouping_fields(database), key="tune_targets")
c = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
name = c[0].text_input("Name of the tuned method", key="tune_name", placeholder="e.g. shape_colour").strip()
use_labels = c[1].checkbox(
    "Use labels", key="tune_labels", help="Learn from the relevance labels of catalog-item queries too."
)
force = c[2].checkbox("Force", key="tune_force", help="Save it even if it does worse than its bases on held-out items.")


def tune_job(name: str, bases: list[str], targets: list[str], use_labels: bool, force: bool):
    def work(job):
        own = open_catalog(path)
        job.message = "reading the base vectors"
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


if c[3].button("Tune", type="primary", disabled=not (bases and (targets or use_labels) and name)):
    try:
        check_name(name)
        ui.jobs().start(f"tune {name}", tune_job(name, bases, targets, use_labels, force))
        st.rerun()
    except TuneError as exc:
        st.error(str(exc))


def tune_table(metrics: dict) -> pd.DataFrame:
    """Base vs tuned, one row per measure, from a TuneResult's validation metrics."""
    rows = []
    for notion, m in metrics.items():
        if notion == "labels":
            rows += [
                {
                    "measure": f"held-back labels {what}",
                    "over": f"{m['queries']} queries, {m['pairs']} pairs",
                    "base": m[f"base_{metric}"],
                    "tuned": m[f"tuned_{metric}"],
                }
                for metric, what in (("auc", "AUC"), ("judged_p10", "judged P@10"))
            ]
        else:
            measure = f"same {' + '.join(notion.split(','))} P@10"
            rows += [
                {"measure": measure, "over": over, "base": m[f"base_{gallery}"], "tuned": m[f"tuned_{gallery}"]}
                for gallery, over in (
                    ("held_out", "held-out items, among themselves"),
                    ("catalog", "held-out items, in the whole catalog"),
                )
            ]
    table = pd.DataFrame(rows, columns=["measure", "over", "base", "tuned"]).astype({"base": float, "tuned": float})
    return table.assign(change=table["tuned"] - table["base"])


def weights_table(result: TuneResult) -> pd.DataFrame:
    """What was learnt: each signal's weight for item queries and for photo queries."""
    signals = list(result.signal_weights.get("item", {}))
    photo = result.signal_weights.get("photo", {})
    return pd.DataFrame(
        {
            "signal": signals,
            "item queries": [result.signal_weights["item"][s] for s in signals],
            "photo queries": [photo.get(s, 0.0) for s in signals],
        }
    )


def show_tune_result(result: TuneResult) -> None:
    if result.signal_weights:
        st.dataframe(weights_table(result), hide_index=True, width="stretch")
    st.dataframe(
        tune_table(result.metrics),
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(format="%+.3f" if c == "change" else "%.3f")
            for c in ("base", "tuned", "change")
        },
    )
    st.caption(
        f"{result.name} over {' + '.join(result.bases)}: {result.items_validated} held-out items, "
        f"{result.items_trained} trained on, {result.label_pairs_trained} label pairs learnt from and "
        f"{result.label_pairs_held_back} held back; {result.epochs} epochs (best {result.best_epoch}), "
        f"{result.seconds:.1f} s. P@10: the share of the 10 nearest that share the query's values."
    )
    if not result.saved:
        st.warning(f"{result.name} was {result.reason}. Tick Force to keep it anyway, or try other bases or targets.")
        return
    st.info(
        f"Saved {result.name} version {result.version}. Next: **Embed + index** {result.name} above, then "
        "compare it with its bases on the Search, Label and Precision pages."
    )


polling = bool(ui.jobs().running())


@st.fragment(run_every=1.0 if polling else None)
def live() -> None:
    """Progress of every job of this process; polls once a second while one runs."""
    for job in ui.jobs().all():
        ui.job_progress(job.name)
        if job.name == "train autoencoder" and job.history:
            st.line_chart(
                pd.DataFrame({"loss": job.history}, index=range(1, len(job.history) + 1)),
                x_label="epoch",
                y_label="loss",
            )
        if isinstance(job.result, TuneResult):
            show_tune_result(job.result)
    if polling and not ui.jobs().running():
        st.rerun()  # a job ended: refresh the table above and stop polling


live()
