"""The method registry and the extractors that run here for real (default, colour, text, autoencoder)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from core.methods import UnknownMethod, WeightsMissing, create_extractor, get_spec, list_methods
from core.methods.distances import chi2_distances

from helpers import DEMO, ROOT, one_line, run_cli, small_styles

OFFLINE_METHODS = ("efficientnet_lite0", "color_hist", "minilm", "hybrid")  # need no download
HUB_METHODS = (
    "vgg16",
    "resnet50",
    "xception",
    "efficientnet_b0",
    "vit",
    "dino",
    "dinov2",
    "clip",
    "fashion_clip",
    "blip2",
)
RESEARCH_METHODS = {*OFFLINE_METHODS, *HUB_METHODS, "autoencoder"}


def demo_photos(n: int) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted((DEMO / "images").iterdir())[:n]]


@pytest.fixture
def empty_models(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    return tmp_path / "models"


def test_registry_lists_every_research_method_with_a_state(empty_models):
    methods = {m.name: m for m in list_methods()}
    assert RESEARCH_METHODS <= set(methods)
    for name in OFFLINE_METHODS:
        assert methods[name].available, methods[name].reason
    for name in HUB_METHODS:
        reason = methods[name].reason
        assert not methods[name].available
        assert f"python -m core download-weights {name}" in reason and str(empty_models / name) in reason
    assert "train-autoencoder" in methods["autoencoder"].reason
    assert methods["minilm"].kind == "text" and methods["clip"].text_query


def test_missing_weights_is_one_actionable_line(empty_models, tmp_path):
    with pytest.raises(WeightsMissing, match="download-weights vit"):
        create_extractor("vit")
    db = tmp_path / "c.db"
    csv_path, photos = small_styles(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "core", "import-csv", str(csv_path), "--images", str(photos), "--db", str(db)],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    done = subprocess.run(
        [sys.executable, "-m", "core", "embed", "--method", "clip", "--db", str(db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "download-weights clip" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_method_names_the_known_ones():
    with pytest.raises(UnknownMethod, match="efficientnet_lite0") as raised:
        get_spec("vgg19")
    assert isinstance(raised.value, ValueError) and str(raised.value).startswith("unknown method 'vgg19'")


def test_default_gives_unit_1280_d_features_that_group_products():
    photos = demo_photos(40)
    extractor = create_extractor("efficientnet_lite0")
    vectors = extractor.embed_images(photos)
    assert vectors.shape == (40, 1280) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    flipped = extractor.embed_images([photos[0].transpose(Image.FLIP_LEFT_RIGHT)])[0]
    sims = vectors @ flipped
    assert int(np.argmax(sims)) == 0 and sims[0] > 0.9  # a mirrored photo is still itself


def test_onnx_runtime_gives_the_pytorch_features(tmp_path, monkeypatch):
    from core.methods.efficientnet import onnx_path

    monkeypatch.setenv("LOOKALIKE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("LOOKALIKE_BACKEND", "onnx")
    photos = demo_photos(6)
    fast = create_extractor("efficientnet_lite0")
    assert fast.backend == "onnx" and onnx_path(None).exists()  # exported once, to the models folder
    monkeypatch.setenv("LOOKALIKE_BACKEND", "torch")
    slow = create_extractor("efficientnet_lite0")
    assert slow.backend == "torch"
    assert np.allclose(fast.embed_images(photos), slow.embed_images(photos), atol=1e-5)


def test_damaged_onnx_export_falls_back_to_pytorch(tmp_path, monkeypatch, caplog):
    from core.methods.efficientnet import onnx_path

    monkeypatch.setenv("LOOKALIKE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("LOOKALIKE_BACKEND", "onnx")
    onnx_path(None).parent.mkdir(parents=True)
    onnx_path(None).write_bytes(b"not a model")
    extractor = create_extractor("efficientnet_lite0")
    assert extractor.backend == "torch" and "using PyTorch" in caplog.text
    assert extractor.embed_images(demo_photos(2)).shape == (2, 1280)


def test_colour_histogram_is_hellinger_form_and_sees_colour():
    extractor = create_extractor("color_hist")
    photo = max(demo_photos(30), key=lambda p: np.asarray(p, dtype=float).std(axis=2).mean())  # most colourful
    brighter = Image.fromarray(np.clip(np.asarray(photo, dtype=np.int16) + 6, 0, 255).astype(np.uint8))
    swapped = Image.fromarray(np.asarray(photo)[:, :, ::-1].copy())  # red <-> blue
    vectors = extractor.embed_images([photo, brighter, swapped, *demo_photos(3)])
    assert vectors.shape[1] == get_spec("color_hist").dim
    assert np.all(vectors >= 0)
    assert np.allclose(np.square(vectors).sum(axis=1), 1, atol=1e-5)  # squared back: an L1 histogram
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    chi2 = chi2_distances(vectors[0], vectors[:3])
    assert chi2[0] == pytest.approx(0, abs=1e-9) and chi2[1] < chi2[2]


def test_minilm_puts_matching_titles_first():
    extractor = create_extractor("minilm")
    titles = ["Lee Men Blue Chicago Fit Jeans", "Titan Women Gold Dial Watch", "Nike Men Running Shoes"]
    query = extractor.embed_texts(["denim jeans"])[0]
    vectors = extractor.embed_texts(titles)
    assert vectors.shape == (3, 384)
    assert int(np.argmax(vectors @ query)) == 0


def test_autoencoder_trains_resumes_and_embeds(tiny_demo, db_path):
    from core.engines.autoencoder_training import train
    from core.engines.embed import embed_catalog
    from core.methods.autoencoder import checkpoint_path

    assert not {m.name: m for m in list_methods(tiny_demo)}["autoencoder"].available
    seen = []
    losses = train(
        tiny_demo,
        epochs=1,
        batch_size=16,
        progress=False,
        on_epoch=lambda epoch, total, loss: seen.append((epoch, total)),
    )
    assert len(losses) == 1 and seen == [(1, 1)] and checkpoint_path(tiny_demo).exists()
    first_version = create_extractor("autoencoder", tiny_demo).spec.version
    losses = train(tiny_demo, epochs=2, batch_size=16, progress=False)  # resumes at epoch 2
    assert len(losses) == 2 and losses[1] < losses[0]
    extractor = create_extractor("autoencoder", tiny_demo)
    assert extractor.spec.version != first_version  # retraining outdates old vectors
    report = embed_catalog(tiny_demo, "autoencoder", progress=False, limit=20)
    assert report.embedded == 20
    assert tiny_demo.execute("SELECT DISTINCT dim FROM embeddings WHERE method = 'autoencoder'").fetchone()[0] == 2048


def test_autoencoder_training_streams_a_catalog_too_large_to_keep(tiny_demo, monkeypatch):
    """Over `keep_bytes` every epoch decodes the photos again through the decode pool, batch by batch,
    and the loss is read once an epoch, not after every step."""
    from core.engines import autoencoder_training

    decoded, reads = [], []
    real_decoded, real_item = autoencoder_training.decoded_batches, torch.Tensor.item

    def spy(batches, preprocess, processes, source):
        decoded.append(sum(len(b) for b in batches))
        return real_decoded(batches, preprocess, processes, source=source)

    def counted_item(tensor):  # the training loop's reads (the optimiser reads its CPU step counters)
        if sys._getframe(1).f_globals["__name__"] == autoencoder_training.__name__:
            reads.append(1)
        return real_item(tensor)

    monkeypatch.setattr(autoencoder_training, "decoded_batches", spy)
    monkeypatch.setattr(torch.Tensor, "item", counted_item)
    losses = autoencoder_training.train(tiny_demo, epochs=2, batch_size=16, progress=False, keep_bytes=0)
    assert decoded == [32, 32]  # one pass of the decode pool per epoch, nothing kept
    assert len(reads) == 2 and len(losses) == 2 and losses[1] < losses[0]


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}])
def test_download_weights_offline_is_one_line_and_makes_no_catalog(tmp_path, env):
    import time

    folder = tmp_path / "nowhere"
    start = time.perf_counter()
    line = one_line(run_cli("download-weights", "clip", "--db", str(folder / "c.db"), env=env))
    assert time.perf_counter() - start < 30 and "clip" in line and "cannot download" in line
    assert not folder.exists()
