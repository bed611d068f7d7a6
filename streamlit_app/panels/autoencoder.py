"""Train (or resume training) the catalog autoencoder in the background; its loss per epoch."""

import pandas as pd
import streamlit as st

from core.catalog.db import open_catalog
from core.engines.autoencoder_training import train
from core.methods import devices

import ui

JOB = "train autoencoder"


def train_job(path, epochs: int, device: str):
    def work(job):
        own = open_catalog(path)

        def on_epoch(epoch, total, loss):
            job.history.append(loss)
            job.progress(epoch, total, f"loss {loss:.5f}")

        with devices.placed(device):
            train(own, epochs=epochs, progress=False, on_epoch=on_epoch)
        job.message = "trained; embed it above"

    return work


def show(device: str) -> None:
    st.subheader("Autoencoder")
    epochs = int(st.number_input("Epochs", 1, 100, 10))
    if st.button("Train autoencoder"):
        ui.jobs().start(JOB, train_job(ui.db_path(), epochs, device))
        st.rerun()


def loss_chart(job) -> None:
    """The training loss so far, when `job` is the autoencoder's."""
    if job.name == JOB and job.history:
        st.line_chart(
            pd.DataFrame({"loss": job.history}, index=range(1, len(job.history) + 1)),
            x_label="epoch",
            y_label="loss",
        )
