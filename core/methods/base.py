"""The extractor contract: what every method's extractor does (unit vectors out: distances.unit).

- `ImageExtractor`: `preprocess(images) -> batch` (NumPy only, and a picklable plain function:
  it runs in decode threads, or decode processes when the model is on a GPU),
  `forward(batch) -> features` (the model, on the caller's thread), and `embed_images`,
  which runs both and returns unit vectors.
- `TextExtractor`: `encode(texts) -> features`; `embed_texts` returns unit vectors.
- `DerivedExtractor`: a method computed from other methods' vectors (its spec's `parts`):
  `combine(part_vectors) -> features`. A catalog is embedded from the parts' stored vectors;
  an uploaded photo by running the parts, then combining. Tuned methods (tuned.py) are derived.

Subclasses return raw features; the base classes normalise them, so every stored vector has
unit length. Nothing here imports torch (see torch_utils.TorchImageExtractor for that).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from core.methods.distances import unit

if TYPE_CHECKING:
    from core.catalog.db import Catalog
    from core.methods.spec import MethodSpec


def unchanged(images: list[Image.Image]) -> list[Image.Image]:
    """The default preprocessing: the photos as they are."""
    return images


class Extractor:
    """One method's loaded model. `spec` may differ from the registered one (e.g. its version)."""

    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        self.spec = spec


class ImageExtractor(Extractor, ABC):
    # Photos -> model input (NumPy, or the photos themselves; no torch). A module-level function
    # or a functools.partial of one, set on the class or the instance, so it pickles on its own.
    preprocess: Callable[[list[Image.Image]], object] = staticmethod(unchanged)

    @abstractmethod
    def forward(self, batch) -> np.ndarray:
        """Raw features, one row per photo of a `preprocess` batch."""

    def embed_batch(self, batch) -> np.ndarray:
        return unit(self.forward(batch))

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.embed_batch(self.preprocess(images))


class TextExtractor(Extractor, ABC):
    @abstractmethod
    def encode(self, texts: list[str]) -> np.ndarray:
        """Raw features, one row per text."""

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return unit(self.encode(list(texts)))


def photo_reader(extractor: Extractor) -> ImageExtractor:
    """`extractor` as one that embeds photos; TypeError for a method that reads text only."""
    if not isinstance(extractor, ImageExtractor):
        raise TypeError(f"{extractor.spec.name} embeds no photos")
    return extractor


def text_reader(extractor: Extractor) -> TextExtractor:
    """`extractor` as one that embeds texts; TypeError for a method that reads photos only."""
    if not isinstance(extractor, TextExtractor):
        raise TypeError(f"{extractor.spec.name} embeds no text")
    return extractor


class DerivedExtractor(ImageExtractor):
    """Vectors computed from the vectors of other methods (`spec.parts`), not from pixels.

    `embeds_parts`: embedding the catalog embeds the parts first (else their stored vectors are
    used as they are, and items lacking one are reported).
    """

    embeds_parts: bool = True

    def __init__(self, spec: MethodSpec, catalog: Catalog | None = None):
        super().__init__(spec, catalog)
        self.catalog = catalog
        # how to get a part's extractor by name: set by the registry that built this one (a method space
        # gives its parts' shared extractors, so a photo never loads a second copy of a part's model)
        self.load_part: PartLoader | None = None

    @abstractmethod
    def combine(self, part_vectors: dict[str, np.ndarray]) -> np.ndarray:
        """Raw features from each part's unit vectors (rows aligned)."""

    def combine_photo(self, part_vectors: dict[str, np.ndarray]) -> np.ndarray:
        """Raw features of photos that are not in the catalog (by default as `combine`)."""
        return self.combine(part_vectors)

    def item_inputs(self, item_ids: list[str]) -> dict[str, np.ndarray]:
        """Inputs of catalog items besides the parts' vectors (rows aligned with `item_ids`); none by default."""
        return {}

    def derive(self, part_vectors: dict[str, np.ndarray]) -> np.ndarray:
        return unit(self.combine(part_vectors))

    def forward(self, batch: list[Image.Image]) -> np.ndarray:
        """Photos that are not in the catalog: run the parts (as `load_part` gives them), then combine."""
        load = self.load_part
        if load is None:
            raise RuntimeError(f"{self.spec.name}: build it with core.methods.build_extractor to embed photos")
        return self.combine_photo({name: load(name).embed_images(batch) for name in self.spec.parts})


PartLoader = Callable[[str], ImageExtractor]  # a derived method's part, by name -> its extractor
