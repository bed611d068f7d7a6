"""Methods: what each method needs, embed and index, train the autoencoder, tune a method.

Each feature is a panel in streamlit_app/panels/; this page lays them out and follows the jobs.
"""

import streamlit as st

from core.catalog.vectors import embeddable_count, methods_with_vectors

import ui
from panels import autoencoder, embedding, method_table, tuning

database = ui.db()
st.title("Methods")
methods = ui.methods()
counts = methods_with_vectors(database)
target = {kind: embeddable_count(database, kind) for kind in ("image", "text")}

method_table.show(database, methods, counts, target)
device = embedding.show(methods, counts, target)
autoencoder.show(device)
tuning.show(database, methods, counts, device)

polling = bool(ui.jobs().running())


@st.fragment(run_every=1.0 if polling else None)
def live() -> None:
    """Progress of every job of this process; polls once a second while one runs."""
    for job in ui.jobs().all():
        ui.job_progress(job.name)
        autoencoder.loss_chart(job)
        tuning.show_result(job)
    if polling and not ui.jobs().running():
        st.rerun()  # a job ended: refresh the table above and stop polling


live()
