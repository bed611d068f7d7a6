"""A convolutional autoencoder trained on the catalog's own photos; its latent code is the feature.

Training (`train`) reads every readable catalog photo at 128x128, runs the given number of
epochs with a progress bar, and saves a checkpoint after each epoch in
`<models>/autoencoder/checkpoint.pt`; running it again resumes from the last saved epoch.
The method's version is derived from the checkpoint, so retraining marks old vectors outdated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from functools import partial

import numpy as np
import sqlite_utils
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from core.catalog.db import Catalog
from core.files.atomic import atomic_path
from core.methods import devices
from core.methods.pixels import to_array
from core.methods.torch_utils import TorchImageExtractor, set_threads
from core.methods.weights import autoencoder_checkpoint as checkpoint_path

log = logging.getLogger(__name__)

SIZE = 128
LATENT_CHANNELS = 32  # latent code: 32 x 8 x 8 = 2048 values (the spec's dim)
DEFAULT_EPOCHS = 10


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class ConvAutoencoder(nn.Module):
    """128x128x3 -> 8x8x32 latent -> 128x128x3."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            _block(3, 32), _block(32, 64), _block(64, 128), _block(128, 128), nn.Conv2d(128, LATENT_CHANNELS, 1)
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(LATENT_CHANNELS, 128, 1),
            nn.ReLU(inplace=True),
            _up(128, 128),
            _up(128, 64),
            _up(64, 32),
            nn.ConvTranspose2d(32, 3, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


# 128x128 RGB in [0, 1], NCHW float32 NumPy: a picklable function, so decode processes can run it.
to_batch = partial(to_array, size=SIZE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _load_catalog_photos(db: sqlite_utils.Database, progress: bool) -> torch.Tensor:
    from core.catalog.images import ImageError, load_rgb
    from core.catalog.vectors import primary_images_sql

    paths = [row[1] for row in db.execute(primary_images_sql())]
    arrays = []
    for path in tqdm(paths, desc="load photos", unit=" img", disable=not progress):
        try:
            arrays.append(np.asarray(load_rgb(path).resize((SIZE, SIZE), Image.BILINEAR)))
        except ImageError as exc:
            log.warning("skipping %s: %s", path, exc)
    if not arrays:
        raise ValueError("no readable photos in the catalog to train the autoencoder on")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def train(
    db: Catalog,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 64,
    progress: bool = True,
    seed: int = 0,
    on_epoch: Callable[[int, int, float], None] | None = None,
) -> list[float]:
    """Train (or resume training) up to `epochs`; return the mean loss of every epoch so far."""
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
    photos = _load_catalog_photos(db, progress)
    generator = torch.Generator().manual_seed(seed + len(losses))
    for epoch in range(len(losses), epochs):
        model.train()
        order = torch.randperm(len(photos), generator=generator)
        total = 0.0
        steps = range(0, len(photos), batch_size)
        for start in tqdm(steps, desc=f"autoencoder epoch {epoch + 1}/{epochs}", disable=not progress):
            batch = photos[order[start : start + batch_size]].to(placement.device).float().div(255.0)
            with placement.autocast():
                loss = nn.functional.mse_loss(model(batch), batch)
            optimiser.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            total += loss.item() * len(batch)
        losses.append(total / len(photos))
        with atomic_path(path) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimiser.state_dict(), "losses": losses}, tmp)
        if on_epoch:
            on_epoch(epoch + 1, epochs, losses[-1])
    return losses


class AutoencoderExtractor(TorchImageExtractor):
    preprocess = to_batch

    def load_model(self, catalog: Catalog | None) -> torch.nn.Module:
        """The trained model; the spec's version becomes the checkpoint's digest."""
        path = checkpoint_path(catalog)
        model = ConvAutoencoder()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
        self.spec = dataclasses.replace(self.spec, version=f"1-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}")
        return model

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encoder(pixels).flatten(1)
