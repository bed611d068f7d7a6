"""Training the catalog autoencoder (core.methods.autoencoder) on the catalog's own photos.

Photos are decoded and resized to 128x128 by the decode pool (worker processes on a GPU,
threads on the CPU) and travel as uint8, a quarter of float32's bytes. A catalog whose photos
fit in `keep_bytes` as uint8 (4 GiB: about 85,000 photos) is decoded once and kept, on the GPU
when there is room for it there, so a step copies nothing; a larger one is decoded again each
epoch, in a new shuffled order, and streamed, so memory stays bounded however large the catalog.
The loss is summed on the device and read once an epoch: no step waits for the GPU. A
checkpoint is saved after each epoch; running again resumes from the last saved epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from core.catalog import activity
from core.catalog.db import Catalog
from core.catalog.vectors import primary_images_sql
from core.engines.decode import decoded_batches
from core.files.atomic import atomic_path
from core.methods import devices
from core.methods.autoencoder import DEFAULT_EPOCHS, SIZE, ConvAutoencoder, checkpoint_path
from core.methods.preprocess import to_uint8
from core.methods.torch_utils import set_threads
from core.team.access import Action, require

log = logging.getLogger(__name__)

KEEP_BYTES = 4 * 2**30  # photos kept between epochs up to this many bytes of uint8
PIXELS = partial(to_uint8, size=SIZE)  # picklable: decode processes run it


def _decoded(paths: list[str], batch_size: int, processes: bool) -> Iterator[np.ndarray]:
    """The photos at `paths` as NHWC uint8 batches of about `batch_size`, in order; unreadable ones skipped."""
    batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    for _, pixels, failures in decoded_batches(batches, PIXELS, processes, source=lambda path: (path, None)):
        for path, reason in failures:
            log.warning("skipping %s: %s", path, reason)
        if pixels is not None:
            yield np.asarray(pixels)  # PIXELS gives NumPy batches


def _as_tensor(pixels: np.ndarray, device: str) -> torch.Tensor:
    """NHWC uint8 NumPy -> NCHW uint8 tensor on `device` (pinned first on a GPU, so the copy can overlap)."""
    return devices.to_device(pixels, device).permute(0, 3, 1, 2)


class Photos:
    """The training photos: kept (decoded once) when they fit `keep_bytes`, else streamed each epoch."""

    def __init__(self, paths: list[str], batch_size: int, device: str, keep_bytes: int, progress: bool):
        self.paths, self.batch_size, self.device = paths, batch_size, device
        self.processes = device != "cpu"
        self.kept: torch.Tensor | None = None
        if len(paths) * SIZE * SIZE * 3 <= keep_bytes:
            chunks = list(tqdm(_decoded(paths, 256, self.processes), desc="load photos", disable=not progress))
            if not chunks:
                raise ValueError("no readable photos in the catalog to train the autoencoder on")
            kept = torch.from_numpy(np.concatenate(chunks)).permute(0, 3, 1, 2).contiguous()
            if self._fits_on(device, kept.nbytes):
                kept = kept.to(device)
            elif device == "cuda":
                kept = kept.pin_memory()  # host-to-device copies that need no staging
            self.kept = kept

    @staticmethod
    def _fits_on(device: str, nbytes: int) -> bool:
        return device != "cpu" and nbytes < devices.HEADROOM * 0.5 * (devices.free_memory(device) or 0)

    def epoch(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """One epoch's batches in a shuffled order: NCHW uint8 tensors on the device."""
        if self.kept is not None:
            order = torch.randperm(len(self.kept), generator=generator).to(self.kept.device)
            for start in range(0, len(order), self.batch_size):
                yield self.kept[order[start : start + self.batch_size]].to(self.device, non_blocking=True)
            return
        shuffled = torch.randperm(len(self.paths), generator=generator).tolist()
        for pixels in _decoded([self.paths[i] for i in shuffled], self.batch_size, self.processes):
            yield _as_tensor(pixels, self.device)

    def steps(self) -> int:
        count = len(self.kept) if self.kept is not None else len(self.paths)
        return -(-count // self.batch_size)


def train(
    db: Catalog,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 64,
    progress: bool = True,
    seed: int = 0,
    on_epoch: Callable[[int, int, float], None] | None = None,
    keep_bytes: int = KEEP_BYTES,
) -> list[float]:
    """Train (or resume training) up to `epochs`; return the mean loss of every epoch so far (admins only)."""
    require(Action.TRAIN)
    set_threads()
    torch.manual_seed(seed)
    placement = devices.current()
    model = ConvAutoencoder().to(placement.device)
    scaler = torch.amp.GradScaler(placement.device, enabled=placement.dtype == "float16")  # bf16 needs none
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    path = checkpoint_path(db)
    losses: list[float] = []
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        losses = list(state["losses"])
    if len(losses) >= epochs:
        return losses
    paths = [row[1] for row in db.execute(primary_images_sql())]
    photos = Photos(paths, batch_size, placement.device, keep_bytes, progress)
    generator = torch.Generator().manual_seed(seed + len(losses))
    for epoch in range(len(losses), epochs):
        model.train()
        total, seen = torch.zeros((), device=placement.device), 0
        bar = tqdm(total=photos.steps(), desc=f"autoencoder epoch {epoch + 1}/{epochs}", disable=not progress)
        for pixels in photos.epoch(generator):
            batch = pixels.float().div_(255.0)
            with placement.autocast():
                loss = nn.functional.mse_loss(model(batch), batch)
            optimiser.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            total += loss.detach().float() * len(batch)  # summed on the device: no sync per step
            seen += len(batch)
            bar.update()
        bar.close()
        if not seen:
            raise ValueError("no readable photos in the catalog to train the autoencoder on")
        losses.append(total.item() / seen)
        with atomic_path(path) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimiser.state_dict(), "losses": losses}, tmp)
        if on_epoch:
            on_epoch(epoch + 1, epochs, losses[-1])
    activity.record(db, Action.TRAIN, f"autoencoder: {len(losses)} epochs, loss {losses[-1]:.4f}")
    return losses
