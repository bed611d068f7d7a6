"""The OpenVINO backend: same answers as float32, the CPU's precision, a kept conversion, the settings.

The precision tests hold on any CPU: where OpenVINO has bfloat16 they check bfloat16 against
float32; a faked capability list forces the no-bfloat16 path (float32) everywhere.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from core.catalog.images import load_rgb
from core.cli import main
from core.methods import backends, create_extractor

from helpers import DEMO, SHARED, needs_shared, save_tiny_vit

openvino_model = pytest.importorskip("core.methods.openvino_model")
openvino_cpu = pytest.importorskip("core.methods.openvino_cpu")
DEFAULT = "efficientnet_lite0"


@pytest.fixture
def models(models_folder, monkeypatch):
    """This test's models folder (conftest.py: the default already converted when an earlier test did it)."""
    monkeypatch.setattr(backends, "_precision", "auto")
    return models_folder


@pytest.fixture
def empty_models(tmp_path, models_cache, monkeypatch):
    """A models folder where nothing is converted for OpenVINO yet. It holds the default's ONNX
    export when an earlier test made it (conftest.py): the export is not what is tested here, the
    OpenVINO conversion is."""
    folder = tmp_path / "models"
    for onnx in (models_cache / DEFAULT).glob(f"{DEFAULT}-*.onnx"):
        (folder / DEFAULT).mkdir(parents=True, exist_ok=True)
        os.link(onnx, folder / DEFAULT / onnx.name)
    monkeypatch.setenv("LOOKALIKE_MODELS", str(folder))
    monkeypatch.setattr(backends, "_precision", "auto")
    return folder


def demo_pixels(n: int) -> np.ndarray:
    from core.methods.efficientnet_lite0 import PIXELS

    return PIXELS([load_rgb(p) for p in sorted((DEMO / "images").glob("*.jpg"))[:n]])


def vectors(backend: str, batch: np.ndarray, monkeypatch, method: str = DEFAULT) -> tuple[np.ndarray, object]:
    monkeypatch.setenv("LOOKALIKE_BACKEND", backend)
    extractor = create_extractor(method)
    assert extractor.backend == backend
    return extractor.embed_batch(batch), extractor


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_openvino_is_the_default_and_agrees_with_float32(models, monkeypatch):
    assert backends.chosen() == "openvino"  # installed: first choice
    batch = demo_pixels(48)
    reference, _ = vectors("onnx", batch, monkeypatch)
    fast, extractor = vectors("openvino", batch, monkeypatch)
    expected = "bf16" if "BF16" in openvino_cpu.capabilities() else "fp32"
    assert extractor.precision == expected
    cosine = cosines(fast, reference)
    assert cosine.min() >= 0.99 and cosine.mean() >= 0.999
    backends.select_precision("fp32")
    exact, extractor = vectors("openvino", batch, monkeypatch)
    assert extractor.precision == "fp32" and cosines(exact, reference).min() >= 0.99999


def test_a_cpu_without_bfloat16_runs_float32(models, monkeypatch):
    """The no-AMX machine: OpenVINO reports no BF16, so auto means float32 (not an error, not slower code)."""
    monkeypatch.setattr(openvino_cpu, "capabilities", lambda: ["WINOGRAD", "FP32", "FP16", "INT8", "BIN"])
    assert openvino_model.precision(DEFAULT, "auto") == "fp32"
    batch = demo_pixels(8)
    fast, extractor = vectors("openvino", batch, monkeypatch)
    assert extractor.precision == "fp32"
    reference, _ = vectors("onnx", batch, monkeypatch)
    assert cosines(fast, reference).min() >= 0.99999
    monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
    assert "no bf16 on this CPU" in backends.describe()


def test_the_conversion_is_kept_per_weights_and_release(empty_models, monkeypatch):
    models = empty_models
    monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
    create_extractor(DEFAULT)
    [xml] = (models / DEFAULT).glob("openvino-*/*.xml")
    assert xml.parent.name == f"openvino-{openvino_cpu.version()}"
    assert xml.stem.startswith(f"{DEFAULT}-") and len(xml.stem.split("-")[-1]) == 12  # the weights' digest

    def never(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(openvino_model.ov, "convert_model", never)
    create_extractor(DEFAULT)  # read back, not converted
    monkeypatch.undo()
    monkeypatch.setenv("LOOKALIKE_MODELS", str(models))
    monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
    monkeypatch.setattr(openvino_cpu, "version", lambda: "9999.1.0")  # a new release: converted anew
    create_extractor(DEFAULT)
    assert [p.parent.name for p in (models / DEFAULT).glob("openvino-*/*.xml")] == ["openvino-9999.1.0"]


def test_torch_methods_run_on_openvino_with_their_own_preprocessing(models, monkeypatch):
    """A transformer and a timm CNN: both take uint8 Pixels, normalised inside the compiled model."""
    save_tiny_vit(models / "vit", hidden_size=64, intermediate_size=128)
    photos = [load_rgb(p) for p in sorted((DEMO / "images").glob("*.jpg"))[:6]]
    for method in ("vit", DEFAULT):
        monkeypatch.setenv("LOOKALIKE_BACKEND", "torch")
        slow = create_extractor(method)
        batch = slow.preprocess(photos)
        reference = slow.embed_batch(batch)
        monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
        if method == DEFAULT:  # the torch model itself, not the ONNX export
            from core.methods.efficientnet_torch import EfficientNetLite0Torch

            fast = EfficientNetLite0Torch(slow.spec)
        else:
            fast = create_extractor(method)
        assert fast.backend == "openvino" and fast.precision in ("bf16", "fp32")
        cosine = cosines(fast.embed_batch(batch), reference)
        assert cosine.min() >= 0.99, method


def test_each_precision_compiles_and_caches_apart(models, monkeypatch):
    """OpenVINO's compiled-blob cache does not key on the precision: a bfloat16 compile once read the
    float32 blob of a transformer and answered NaN. Float32, then auto, then float32 again, in one
    models folder: every answer finite and close to PyTorch's."""
    save_tiny_vit(models / "vit", hidden_size=64, intermediate_size=128, image_size=224, patch_size=16)
    photos = [load_rgb(p) for p in sorted((DEMO / "images").glob("*.jpg"))[:4]]
    monkeypatch.setenv("LOOKALIKE_BACKEND", "torch")
    slow = create_extractor("vit")
    batch = slow.preprocess(photos)
    reference = slow.embed_batch(batch)
    for precision in ("fp32", "auto", "fp32"):
        backends.select_precision(precision)
        fast, extractor = vectors("openvino", batch, monkeypatch, "vit")
        assert np.isfinite(fast).all(), (precision, extractor.precision)
        assert cosines(fast, reference).min() >= 0.99, (precision, extractor.precision)


def test_a_bad_backend_is_one_line_and_only_for_commands_that_run_a_model(embedded_demo, monkeypatch, capsys):
    monkeypatch.setenv("LOOKALIKE_BACKEND", "tensorflow")
    db = str(embedded_demo.path)
    assert main(["stats", "--db", db]) == 0
    item = embedded_demo.execute("SELECT id FROM items LIMIT 1").fetchone()[0]
    assert main(["search", "--db", db, "--item", str(item), "--json"]) == 0
    capsys.readouterr()
    assert main(["embed", "--db", db, "--limit", "2"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "LOOKALIKE_BACKEND must be openvino, onnx or torch" in error
    assert main(["methods", "--db", db]) == 0
    assert "LOOKALIKE_BACKEND must be" in capsys.readouterr().out


def test_a_bad_precision_is_one_line_everywhere_like_a_bad_backend(embedded_demo, monkeypatch, capsys):
    from fastapi.testclient import TestClient

    from core.api.app import create_app

    from helpers import one_line, run_cli

    db = str(embedded_demo.path)
    photo = str(DEMO / "images" / "10129.jpg")
    line = one_line(run_cli("search", "--image", photo, "--db", db, env={"LOOKALIKE_PRECISION": "fp8"}))
    assert "LOOKALIKE_PRECISION must be auto or fp32, not 'fp8'" in line
    monkeypatch.setenv("LOOKALIKE_PRECISION", "fp8")
    assert main(["methods", "--db", db, "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[DEFAULT]["available"] and rows[DEFAULT]["backend"] is None
    with TestClient(create_app(embedded_demo.path, keys=())) as client:
        reply = client.get("/methods")
    assert reply.status_code == 200 and {row["name"] for row in reply.json()} == set(rows)
    assert main(["embed", "--db", db, "--method", DEFAULT, "--retry-failed"]) == 2
    assert "LOOKALIKE_PRECISION must be" in capsys.readouterr().err


def test_methods_json_and_embed_say_which_backend_and_precision(embedded_demo, models, monkeypatch, capsys):
    monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
    db = str(embedded_demo.path)
    assert main(["methods", "--db", db, "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    expected = openvino_model.precision(DEFAULT)
    assert (rows[DEFAULT]["backend"], rows[DEFAULT]["precision"]) == ("openvino", expected)
    assert rows["color_hist"]["backend"] is None and rows["vit"]["backend"] == "openvino"
    embedded_demo.execute("DELETE FROM embeddings WHERE method = ?", (DEFAULT,))
    embedded_demo.conn.commit()
    assert main(["embed", "--db", db, "--limit", "4", "--precision", "fp32", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["embedded"], report["backend"], report["precision"]) == (4, "openvino", "fp32")
    monkeypatch.setenv("LOOKALIKE_BACKEND", "onnx")
    assert main(["methods", "--db", db, "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[DEFAULT]["backend"] == "onnx" and rows["vit"]["backend"] == "torch"


def test_an_uploaded_photo_gets_the_stored_vectors_backend(embedded_demo, monkeypatch):
    """Upload search builds the same extractor as `embed` (the same backend settings): a catalog photo
    uploaded finds its own stored vector. (Other backends' vectors agree to the cosines tested above.)"""
    from core.catalog.vectors import load_matrix
    from core.engines.embed import embed_image

    ids, stored = load_matrix(embedded_demo, DEFAULT)
    path = embedded_demo.execute("SELECT path FROM images WHERE item_id = ?", (ids[0],)).fetchone()[0]
    monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
    vector = embed_image(open(path, "rb").read(), DEFAULT, embedded_demo)
    assert float(vector @ stored[0]) >= 0.9999


@needs_shared
@pytest.mark.timeout(900)  # about a minute on a quiet 2-core machine: 4,000 photos, twice
def test_bfloat16_keeps_the_answers_on_real_photos(models, monkeypatch):
    """On the 4,000 labelled photos (what the issue asked CI to check): per-photo cosine to float32
    >= 0.99 (min) and >= 0.999 (mean); type P@10 within 0.005."""
    import csv

    from core.methods.efficientnet_lite0 import PIXELS

    if "BF16" not in openvino_cpu.capabilities():
        pytest.skip("this CPU has no bfloat16: OpenVINO runs float32 here (the fallback test covers it)")
    folder = SHARED / "fashion-products"
    types = {row["id"]: row["articleType"] for row in csv.DictReader(open(folder / "styles.csv", encoding="utf-8"))}
    paths = sorted(p for p in (folder / "images").glob("*.jpg") if p.stem in types)
    labels = np.array([types[p.stem] for p in paths])
    monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
    fast = create_extractor(DEFAULT)
    backends.select_precision("fp32")
    exact = create_extractor(DEFAULT)
    assert (fast.precision, exact.precision) == ("bf16", "fp32")
    half, full = [], []
    for start in range(0, len(paths), 256):
        batch = PIXELS([load_rgb(p, PIXELS.size) for p in paths[start : start + 256]])
        half.append(fast.embed_batch(batch))
        full.append(exact.embed_batch(batch))
    half, full = np.concatenate(half), np.concatenate(full)
    cosine = cosines(half, full)
    assert cosine.min() >= 0.99 and cosine.mean() >= 0.999, (cosine.min(), cosine.mean())
    assert abs(type_precision(half, labels) - type_precision(full, labels)) <= 0.005


def type_precision(matrix: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean share of each photo's k nearest others (cosine) with its articleType."""
    sims = matrix @ matrix.T
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argpartition(-sims, k, axis=1)[:, :k]
    return float((labels[nearest] == labels[:, None]).mean())


def test_precision_flag_values_are_checked():
    with pytest.raises(backends.BackendError, match="auto or fp32"):
        backends.select_precision("int8")
