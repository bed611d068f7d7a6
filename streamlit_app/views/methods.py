"""Methods: what each method needs, embed and index, train the autoencoder, tune a method.

Each feature is a panel in streamlit_app/panels/; this page lays them out, each job's progress and
result right under the button that started it. The title shows at once; the panels (which import
the model libraries) load under a spinner.
"""

import streamlit as st

import ui

database = ui.db()
st.title("Methods")
with st.spinner("Looking up the methods (the first visit loads the model libraries)…"):
    from core.catalog.vectors import embeddable_count, methods_with_vectors

    from panels import autoencoder, embedding, method_table, tuning  # after the title: they import torch

    methods = ui.methods()
    counts = methods_with_vectors(database)
    target = {kind: embeddable_count(database, kind) for kind in ("image", "text")}

device = embedding.show(methods, counts, target)
ui.live_jobs("embed ")  # the feedback right under Embed + index
method_table.show(database, methods, counts, target)
autoencoder.show(device)
ui.live_jobs(autoencoder.JOB, autoencoder.loss_chart)
tuning.show(database, methods, counts, device)
ui.live_jobs("tune ", tuning.show_result)
