"""Embed + index a method in the background, on the device this session picked."""

import streamlit as st

from core.catalog.db import open_catalog
from core.engines.prepare import prepare_method
from core.methods import backends, devices
from core.methods.registry import MethodInfo
from core.search.space import open_space

import ui


def session_device() -> str:
    """The device this session picked in `device_choice` (which may come later on the page), else the
    configured one; "auto" when the pick cannot be used here (`device_choice` says why)."""
    chosen = st.session_state.get(ui.Keys.DEVICE) or st.session_state.get(f"saved::{ui.Keys.DEVICE}")
    try:
        devices.resolve(chosen or devices.configured())
    except ValueError:
        return "auto"
    return chosen or devices.configured()


def device_choice() -> str:
    """This session's device (other sessions keep theirs); a missing GPU says so and falls back."""
    device = st.selectbox(
        "Device",
        devices.CHOICES,
        index=devices.CHOICES.index(devices.configured()),
        **ui.remembered(ui.Keys.DEVICE, list(devices.CHOICES)),
        help="auto: a CUDA GPU when torch sees one, else the CPU. Applies to the jobs you start here.",
    )
    try:
        devices.resolve(device)
        st.caption(
            f"Torch models run on {devices.describe(device)}; when that is the CPU, image models run there on "
            f"{backends.describe()} (`LOOKALIKE_BACKEND=openvino|onnx|torch`, `embed --precision auto|fp32`)."
        )
        return device
    except ValueError as exc:
        st.error(f"{ui.plain(exc)}. Using {ui.plain(devices.describe('auto'))} instead.")
        return "auto"


def embed_and_index(path, method: str, device: str):
    def work(job):
        space = open_space(open_catalog(path), method)  # a job thread gets its own connection
        job.message = "embedding, then indexing"
        with devices.placed(device):
            report = prepare_method(space, on_progress=job.progress)
        job.message = f"{report.embedded} embedded, {report.failed} skipped"
        return report

    return work


def show(methods: list[MethodInfo], counts: dict[str, int], target: dict[str, int], device: str) -> None:
    """The panel: pick a method, embed and index it on `device` in the background."""
    st.subheader("Embed and index")
    ready = [m.name for m in methods if m.available]
    running = {j.name for j in ui.jobs().running()}
    kinds = {m.name: m.kind for m in methods}
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
        ui.jobs().start(f"embed {chosen}", embed_and_index(ui.db_path(), chosen, device))
        st.rerun()  # show the progress bar at once
