"""A convolutional autoencoder trained on the catalog's own photos; its latent code is the feature.

Training lives in `core.engines.autoencoder_training`; it saves a checkpoint after each epoch in
the catalog's own folder, `data/shop.db` -> `data/shop/trained/autoencoder/checkpoint.pt`. The method's version is derived from the checkpoint, so
retraining marks old vectors outdated.
"""

from __future__ import annotations

import dataclasses
import logging
from functools import partial

import torch
from torch import nn

from core.catalog.db import Catalog
from core.methods.preprocess import to_array
from core.methods.spec import MethodSpec
from core.methods.torch_utils import TorchImageExtractor
from core.methods.weights import autoencoder_checkpoint as checkpoint_path
from core.methods.weights import autoencoder_version

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


def preprocessing(spec: MethodSpec, catalog: Catalog | None = None) -> partial:
    """The registry's way to `to_batch`, with no checkpoint loaded."""
    return to_batch


class AutoencoderExtractor(TorchImageExtractor):
    preprocess = to_batch

    def load_model(self, catalog: Catalog | None) -> torch.nn.Module:
        """The trained model; the spec's version becomes the checkpoint's digest."""
        path = checkpoint_path(catalog)
        model = ConvAutoencoder()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
        self.spec = dataclasses.replace(self.spec, version=autoencoder_version(catalog))
        return model

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encoder(pixels).flatten(1)
