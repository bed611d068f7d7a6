"""Methods: weights status, embed and index each method, train the autoencoder."""
import pandas as pd
import streamlit as st

from core import devices
from core.db import open_catalog
from core.extractors.autoencoder import train
from core.index import index_status
from core.prepare import prepare_method
from core.vectors import embeddable_count, methods_with_vectors

import ui

database = ui.db()
st.title("Methods")
path = ui.db_path()
methods = ui.methods()
counts = methods_with_vectors(database)
status = index_status(database)
target = {kind: embeddable_count(database, kind) for kind in ("image", "text")}

st.dataframe(pd.DataFrame([{
    "method": m["name"], "kind": m["kind"], "ready": m["available"], "vectors": f"{counts.get(m['name'], 0)}/{target[m['kind']]}",
    "index": ("ready" if not status[m["name"]]["problem"] else status[m["name"]]["problem"]) if m["name"] in status else "—",
    "what it is": m["description"], "to enable": m["reason"] or "",
} for m in methods]), hide_index=True, width="stretch")


def embed_and_index(method: str):
    def work(job):
        own = open_catalog(path)             # a job thread gets its own connection
        job.message = "embedding, then indexing"
        report = prepare_method(own, method, on_progress=job.progress)
        job.message = f"{report.embedded} embedded, {report.failed} skipped"
        return report
    return work


st.subheader("Embed and index")
device = st.selectbox("Device", devices.CHOICES, index=devices.CHOICES.index(devices.configured()),
                      **ui.remembered(ui.Keys.DEVICE, list(devices.CHOICES)),
                      help="auto: a CUDA GPU when torch sees one, else the CPU. Applies to every job of this app.")
try:
    devices.select(device)
    st.caption(f"Torch models run on {devices.describe()}.")
except ValueError as exc:
    devices.select("auto")
    st.error(f"{exc}. Using {devices.describe()} instead.")
ready = [m["name"] for m in methods if m["available"]]
running = {j.name for j in ui.jobs().running()}
kinds = {m["name"]: m["kind"] for m in methods}
partial = [f"{n} ({counts[n]}/{target[kinds[n]]})" for n in ready
           if 0 < counts.get(n, 0) < target[kinds[n]] and f"embed {n}" not in running]
if partial:
    st.warning("Partly embedded (a job stopped, or items were added): " + ", ".join(partial)
               + ". Embed + index carries on where it stopped.")
c = st.columns([3, 1])
chosen = c[0].selectbox("Method", ready, key="embed_method")
if c[1].button("Embed + index", type="primary"):
    ui.jobs().start(f"embed {chosen}", embed_and_index(chosen))
    st.rerun()                   # show the progress bar at once

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


polling = bool(ui.jobs().running())


@st.fragment(run_every=1.0 if polling else None)
def live() -> None:
    """Progress of every job of this process; polls once a second while one runs."""
    for job in ui.jobs().all():
        ui.job_progress(job.name)
        if job.name == "train autoencoder" and job.history:
            st.line_chart(pd.DataFrame({"loss": job.history}, index=range(1, len(job.history) + 1)),
                          x_label="epoch", y_label="loss")
    if polling and not ui.jobs().running():
        st.rerun()               # a job ended: refresh the table above and stop polling


live()
