"""Hub-backed methods run through their real loading code with tiny random models saved locally.

No download happens: each test builds a model from a config (timm `pretrained=False`,
transformers `*Config` with small sizes), saves it where a user would put downloaded weights
(`$LOOKALIKE_MODELS/<method>/`) and then goes through list_methods -> create_extractor ->
embed, exactly as with real weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from core.methods import create_extractor, list_methods
from core.search.space import open_space

from helpers import DEMO, save_tiny_vit

PHOTOS = [Image.open(p).convert("RGB") for p in sorted((DEMO / "images").iterdir())[:3]]


@pytest.fixture
def models(tmp_path, monkeypatch):
    """A private models folder; PyTorch runs the models (these tests are about loading weights: the
    OpenVINO conversion of a torch method is tests/test_openvino.py's)."""
    monkeypatch.setenv("LOOKALIKE_BACKEND", "torch")
    monkeypatch.setenv("LOOKALIKE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path / "models"


def available(name: str) -> bool:
    return {m.name: m.available for m in list_methods()}[name]


@pytest.mark.parametrize("method", ["resnet50", "efficientnet_b0", "xception", "vgg16"])
def test_timm_cnn_loads_local_weights_file(models, method):
    from safetensors.torch import save_file

    from core.methods.specs import ARCHS

    torch.manual_seed(0)
    reference = timm.create_model(ARCHS[method][0], pretrained=False, num_classes=0).eval()
    folder = models / method
    folder.mkdir(parents=True)
    assert not available(method)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(folder / "model.safetensors"))
    assert available(method)
    extractor = create_extractor(method)
    loaded = dict(extractor.model.named_parameters())
    for name, value in list(reference.named_parameters())[:3]:
        assert torch.equal(loaded[name], value)  # the saved weights, not a fresh init
    vectors = extractor.embed_images(PHOTOS)
    assert vectors.shape == (3, ARCHS[method][1])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("method", ["vit", "dino"])
def test_vit_family_loads_from_local_folder(models, method):
    save_tiny_vit(models / method)
    assert available(method)
    vectors = create_extractor(method).embed_images(PHOTOS)
    assert vectors.shape == (3, 32) and np.isfinite(vectors).all()


def test_dinov2_loads_from_local_folder(models):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    Dinov2Model(
        Dinov2Config(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=28,
            patch_size=14,
        )
    ).save_pretrained(models / "dinov2")
    BitImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}).save_pretrained(
        models / "dinov2"
    )
    vectors = create_extractor("dinov2").embed_images(PHOTOS)
    assert vectors.shape == (3, 32)
    # DINOv2's feature is its (layer-normed) CLS token, `pooler_output`, computed here without our code;
    # the mean of the patch tokens (a wrong pooling) points elsewhere.
    model = Dinov2Model.from_pretrained(models / "dinov2").eval()
    pixels = BitImageProcessor.from_pretrained(models / "dinov2")(PHOTOS, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        out = model(pixel_values=pixels)
    unit = torch.nn.functional.normalize
    expected = unit(out.pooler_output, dim=1).numpy()
    assert np.allclose(vectors, expected, atol=1e-4)
    patch_mean = unit(out.last_hidden_state[:, 1:].mean(dim=1), dim=1).numpy()
    assert not np.allclose(vectors, patch_mean, atol=1e-2)


def _save_tiny_clip(folder) -> None:
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    from core.methods.weights import minilm_folder

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder(), local_files_only=True)  # any offline tokenizer
    config = CLIPConfig(
        text_config={
            "vocab_size": tokenizer.vocab_size,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 64,
        },
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.mark.parametrize("method", ["clip", "fashion_clip"])
def test_clip_family_embeds_images_and_text_in_one_space(models, method):
    _save_tiny_clip(models / method)
    extractor = create_extractor(method)
    images = extractor.embed_images(PHOTOS)
    texts = extractor.embed_texts(["a red dress", "black leather shoes"])
    assert images.shape == (3, 16) and texts.shape == (2, 16)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)


def test_blip2_vision_and_qformer_features(models):
    from transformers import Blip2Config, Blip2VisionModelWithProjection, BlipImageProcessor

    config = Blip2Config(
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "image_size": 32,
            "patch_size": 8,
        },
        qformer_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "encoder_hidden_size": 32,
        },
        num_query_tokens=4,
        image_text_hidden_size=16,
    )
    Blip2VisionModelWithProjection(config).save_pretrained(models / "blip2")
    BlipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(models / "blip2")
    vectors = create_extractor("blip2").embed_images(PHOTOS)
    assert vectors.shape == (3, 16) and np.isfinite(vectors).all()


def test_embedding_catalog_with_a_hub_method(models, demo_catalog, db_path):
    from core.engines.embed import embed_catalog
    from core.search.queries import search

    _save_tiny_clip(models / "clip")
    report = embed_catalog(demo_catalog, "clip", limit=30, progress=False)
    assert report.embedded == 30
    result = search(open_space(demo_catalog, "clip"), text="blue jeans", k=5)
    assert len(result.results) == 5
