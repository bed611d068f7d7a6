"""Transformers methods ship uint8 photos and normalise on the model's side, with the vectors of
their checkpoint's own (float32) processor.

Each processor kind the checkpoints use is saved beside a tiny random ViT, where a user would put
downloaded weights; the decode side must reproduce its resize and crop in uint8 (a quarter of the
bytes) and the model side its rescale and normalisation.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from core.catalog.images import load_rgb
from core.methods import backends, create_extractor
from core.methods.preprocess import Pixels

from helpers import DEMO, ROOT, SHARED, save_tiny_vit

DEMO_PHOTOS = sorted((DEMO / "images").glob("*.jpg"))


def photos() -> list[Image.Image]:
    """Square catalog photos and the same photos cut tall and stretched wide (crops and aspect ratios)."""
    square = [load_rgb(p) for p in DEMO_PHOTOS[:4]]
    tall = [img.crop((40, 0, 190, 224)) for img in square[:2]]
    wide = [img.resize((333, 207), Image.BICUBIC) for img in square[2:]]
    return square + tall + wide


def vit_like():
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": 32, "width": 32})


def clip_like():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def dinov2_like():
    from transformers import BitImageProcessor

    return BitImageProcessor(
        size={"shortest_edge": 40},
        crop_size={"height": 32, "width": 32},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )


def blip2_like():
    from transformers import BlipImageProcessor

    return BlipImageProcessor(size={"height": 32, "width": 32})


PROCESSORS = {"vit": vit_like, "clip": clip_like, "dinov2": dinov2_like, "blip2": blip2_like}


@pytest.fixture
def models(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_BACKEND", "torch")
    monkeypatch.setenv("LOOKALIKE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(backends, "_precision", "auto")
    return tmp_path / "models"


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


@pytest.mark.parametrize("kind", PROCESSORS)
def test_decoders_ship_uint8_and_the_vectors_are_the_processors(models, kind):
    processor = PROCESSORS[kind]()
    save_tiny_vit(models / "vit", processor)
    extractor = create_extractor("vit")
    images = photos()
    old = processor(images=images, return_tensors="np")["pixel_values"]  # the float32 path of before
    shipped = extractor.preprocess(images)
    assert isinstance(extractor.preprocess, Pixels)
    assert shipped.dtype == np.uint8 and shipped.shape == (len(images), 32, 32, 3)
    assert shipped.nbytes * 4 == old.nbytes  # a quarter of the bytes through the pipe
    assert pickle.loads(pickle.dumps(extractor.preprocess)) == extractor.preprocess  # decode processes, Ray
    assert np.abs(extractor.preprocess.normalise(shipped) - old).max() < 1.01 / 255 / min(processor.image_std)
    cosine = cosines(extractor.embed_batch(shipped), extractor.embed_batch(old))
    assert cosine.min() >= 0.9999, cosine


def test_a_decode_worker_prepares_transformer_photos_without_torch_or_transformers(models):
    """What a worker process unpickles is a `Pixels`: no 8-second torch + transformers import per worker."""
    save_tiny_vit(models / "vit", clip_like())
    shipped = pickle.dumps(create_extractor("vit").preprocess)
    worker = (
        "import pickle, sys; from PIL import Image; from core.engines.decode import decode_chunk; "
        "preprocess = pickle.loads(sys.stdin.buffer.read()); preprocess([Image.new('RGB', (300, 200))]); "
        "print(sorted(m for m in ('torch', 'torchvision', 'transformers') if m in sys.modules))"
    )
    answer = subprocess.run([sys.executable, "-c", worker], input=shipped, capture_output=True, check=True, cwd=ROOT)
    assert answer.stdout.decode().strip() == "[]"


def test_openvino_normalises_the_uint8_photos_inside_the_model(models, monkeypatch):
    pytest.importorskip("openvino")
    processor = dinov2_like()
    save_tiny_vit(models / "vit", processor)
    images = photos()
    reference = create_extractor("vit").embed_batch(processor(images=images, return_tensors="np")["pixel_values"])
    backends.select_precision("fp32")
    monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
    fast = create_extractor("vit")
    assert fast.backend == "openvino" and isinstance(fast.preprocess, Pixels)
    assert cosines(fast.embed_images(images), reference).min() >= 0.9999


def test_a_processor_pixels_cannot_reproduce_runs_whole_in_the_workers(models):
    """Padding (or any step a Pixels lacks) keeps the processor's own float32 output."""
    processor = vit_like()
    processor.do_pad = True
    save_tiny_vit(models / "vit", processor)
    extractor = create_extractor("vit")
    assert not isinstance(extractor.preprocess, Pixels)
    batch = extractor.preprocess(photos())
    assert batch.dtype == np.float32 and batch.shape[1:] == (3, 32, 32)
    assert np.isfinite(extractor.embed_batch(batch)).all()


def test_shortest_edge_and_crop_as_transformers_computes_them():
    """Sizes and offsets match transformers' rules: int(edge * long / short), then (side - crop) // 2."""
    pixels = Pixels(4, (0.0,) * 3, (1.0,) * 3, Image.NEAREST, shortest_edge=5)
    ramp = np.tile(np.arange(10, dtype=np.uint8) * 20, (7, 1))  # 10 wide, 7 high: x-coordinates as values
    [out] = pixels([Image.fromarray(np.stack([ramp] * 3, axis=-1))])
    resized = np.asarray(Image.fromarray(ramp).resize((7, 5), Image.NEAREST))  # int(5 * 10 / 7) = 7 wide
    assert np.array_equal(out[..., 0], resized[0:4, 1:5]) and pixels.draft == 5
    with pytest.raises(ValueError, match="shortest edge"):
        Pixels(224, (0.0,) * 3, (1.0,) * 3, shortest_edge=200)


@pytest.mark.skipif(not (SHARED / "query-photos").is_dir(), reason="../shared/data is absent")
def test_full_size_shopper_photos_keep_the_processors_vectors(models):
    """Real 1275-pixel photos: the uint8 split (Pillow's resize) against the processor (torchvision's)."""
    processor = clip_like()
    save_tiny_vit(models / "vit", processor)
    extractor = create_extractor("vit")
    images = [load_rgb(p) for p in sorted((SHARED / "query-photos").glob("*.jpg"))]
    old = extractor.embed_batch(processor(images=images, return_tensors="np")["pixel_values"])
    assert cosines(extractor.embed_images(images), old).min() >= 0.9999
