"""Methods: what a merchandiser does here first (embed, tune, compare), then, folded away, what an
administrator needs (the device and runtimes, every method with its remedy, the autoencoder).

Each feature is a panel in streamlit_app/panels/; this page lays them out, each job's progress and
result right under the button that started it. The title shows at once; the panels (which import
the model libraries) load under a spinner.
"""

import streamlit as st

import ui

INTRO = """Here you make look-alikes searchable, fit them to your catalog and compare them:

1. **Embed + index** a method: it looks at every photo (or reads every title) once, so that its
   look-alikes can be searched.
2. **Tune** a method: it learns from your catalog's fields (category, colour, ...) and your team's
   labels which items belong together.
3. **Compare** methods side by side on the Search page, and by how often they are right on the Precision page.
"""

database = ui.db()
st.title("Methods")
st.markdown(INTRO)
with st.spinner("Looking up the methods (the first visit loads the model libraries)…"):
    from core.catalog.vectors import embeddable_count, methods_with_vectors

    from panels import autoencoder, embedding, method_table, tuning  # after the title: they import torch

    methods = ui.methods()
    counts = methods_with_vectors(database)
    target = {kind: embeddable_count(database, kind) for kind in ("image", "text")}

device = embedding.session_device()  # chosen under "For your administrator" below; auto until then
embedding.show(methods, counts, target, device)
ui.live_jobs("embed ")  # the feedback right under Embed + index
method_table.searchable(methods)
tuning.show(database, methods, counts, device)
ui.live_jobs("tune ", tuning.show_result)
with st.expander("For your administrator: where models run, every method and what it needs"):
    embedding.device_choice()
    method_table.show(database, methods, counts, target)
    autoencoder.show(device)
ui.live_jobs(autoencoder.JOB, autoencoder.loss_chart)
