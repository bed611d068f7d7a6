"""The OpenVINO backend: same answers as float32, the CPU's precision, a kept conversion, the settings.

The precision tests hold on any CPU: where OpenVINO has bfloat16 they check bfloat16 against
float32; a faked capability list forces the no-bfloat16 path (float32) everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.catalog.images import load_rgb
from core.cli import main
from core.methods import backends, create_extractor

from helpers import DEMO, ROOT, SHARED, needs_shared, save_tiny_vit

openvino_model = pytest.importorskip("core.methods.openvino_model")
openvino_cpu = pytest.importorskip("core.methods.openvino_cpu")
DEFAULT = "efficientnet_lite0"
TESTS = Path(__file__).parent


@pytest.fixture
def models(models_folder, monkeypatch):
    """This test's models folder (conftest.py: the default already converted when an earlier test did it)."""
    monkeypatch.setattr(backends, "_precision", "auto")
    return models_folder


@pytest.fixture
def empty_models(tmp_path, models_cache, monkeypatch):
    """A models folder, and an empty user-wide cache (LOOKALIKE_CACHE): nothing converted for OpenVINO
    yet. The folder holds the default's ONNX export when an earlier test made it (conftest.py): the
    export is not what is tested here, the OpenVINO conversion is."""
    folder = tmp_path / "models"
    for onnx in (models_cache / DEFAULT).glob(f"{DEFAULT}-*.onnx"):
        (folder / DEFAULT).mkdir(parents=True, exist_ok=True)
        os.link(onnx, folder / DEFAULT / onnx.name)
    monkeypatch.setenv("LOOKALIKE_MODELS", str(folder))
    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(backends, "_precision", "auto")
    return folder


def entries(cache: Path) -> list[Path]:
    """The converted models in a user-wide cache."""
    return sorted(xml.parent for xml in cache.glob("*/*/model.xml"))


def never(*args, **kwargs):
    raise AssertionError("converted again")


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


def test_the_conversion_is_kept_per_weights_and_release(empty_models, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
    create_extractor(DEFAULT)
    [entry] = entries(tmp_path / "cache")
    name, digest, side = entry.parent.name.rsplit("-", 2)
    assert (name, len(digest), side) == (DEFAULT, 12, "224")  # the weights' digest, the input size
    monkeypatch.setattr(openvino_model.ov, "convert_model", never)
    create_extractor(DEFAULT)  # read back, not converted
    monkeypatch.undo()
    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LOOKALIKE_MODELS", str(empty_models))
    monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
    monkeypatch.setattr(openvino_cpu, "version", lambda: "9999.1.0")  # a new release: converted anew, beside
    create_extractor(DEFAULT)
    assert len(entries(tmp_path / "cache")) == 2


def test_two_catalogs_share_one_conversion(empty_models, tmp_path, monkeypatch):
    """A second catalog (its own, empty models folder) reads the user-wide conversion: nothing is
    converted or exported again, and both give the same vectors."""
    from core import settings
    from core.catalog.db import open_catalog

    monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
    monkeypatch.delenv("LOOKALIKE_MODELS")
    settings.reload()
    first, second = (open_catalog(tmp_path / name / "shop.db") for name in ("a", "b"))
    batch = demo_pixels(8)
    for source in (empty_models / DEFAULT).glob("*.onnx"):  # the export made earlier in this run
        (first.models_dir / DEFAULT).mkdir(parents=True, exist_ok=True)
        os.link(source, first.models_dir / DEFAULT / source.name)
    before = create_extractor(DEFAULT, first).embed_batch(batch)
    monkeypatch.setattr(openvino_model.ov, "convert_model", never)
    monkeypatch.setattr("core.methods.efficientnet_torch.export_onnx", never)
    after = create_extractor(DEFAULT, second).embed_batch(batch)
    assert len(entries(tmp_path / "cache")) == 1 and not (second.models_dir / DEFAULT).exists()
    assert cosines(before, after).min() >= 0.9999


@pytest.mark.parametrize("damaged", ["compiled-*/*.blob", "model.bin", "model.xml"])
def test_a_damaged_conversion_is_detected_and_rebuilt(embedded_demo, empty_models, tmp_path, monkeypatch, damaged):
    """Random bytes written into the compiled blobs, the converted weights or the graph: the next start
    notices (digest or reference answer), rebuilds what is damaged once, and a catalog photo
    uploaded finds its own stored vector again; the run after that finds nothing to rebuild."""
    from core.catalog.vectors import load_matrix
    from core.search.queries import photo_vector
    from core.search.space import open_space

    monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
    create_extractor(DEFAULT)
    [entry] = entries(tmp_path / "cache")
    rng = np.random.default_rng(7)
    for path in entry.glob(damaged):
        data = bytearray(path.read_bytes())
        for start in rng.integers(len(data) // 8, len(data) - 1024, size=3):
            data[start : start + 1024] = rng.bytes(1024)
        path.write_bytes(bytes(data))
    ids, stored = load_matrix(embedded_demo, DEFAULT)
    path = embedded_demo.execute("SELECT path FROM images WHERE item_id = ?", (ids[0],)).fetchone()[0]
    vector = photo_vector(open_space(embedded_demo, DEFAULT), open(path, "rb").read())
    assert float(vector @ stored[0]) >= 0.999
    assert (stored @ vector).argmax() == 0
    assert entries(tmp_path / "cache") == [entry]
    monkeypatch.setattr(openvino_model.ov, "convert_model", never)
    monkeypatch.setattr(openvino_model, "compiled_pair", counted(openvino_model.compiled_pair, calls := []))
    create_extractor(DEFAULT)  # whole again: read, compiled once, nothing rebuilt
    assert len(calls) == 1


def counted(function, calls: list):
    def wrapper(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)

    return wrapper


def test_processes_converting_at_once_share_one_entry(empty_models, tmp_path):
    """Three processes start on an empty cache at once: one converts, the others wait for it and read
    its entry; all answer the same, and no staging folder is lost or left behind."""
    script = (
        "import logging, sys; from core.methods import create_extractor; from test_openvino import demo_pixels;"
        "logging.basicConfig(level=logging.INFO);"
        "import numpy as np; np.save(sys.argv[1], create_extractor('efficientnet_lite0').embed_batch(demo_pixels(4)))"
    )
    env = {
        **os.environ,
        "LOOKALIKE_BACKEND": "openvino",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS), str(TESTS.parent)]),
    }
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / f"{n}.npy")], env=env, cwd=ROOT, stderr=subprocess.PIPE
        )
        for n in range(3)
    ]
    errors = [run.communicate(timeout=300)[1].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], errors
    assert sum("converting" in error for error in errors) == 1
    [entry] = entries(tmp_path / "cache")
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name, f"{entry.name}.lock"]
    answers = [np.load(tmp_path / f"{n}.npy") for n in range(3)]
    assert all(np.array_equal(answer, answers[0]) for answer in answers)


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
    assert "LOOKALIKE_PRECISION must be auto, int8 or fp32, not 'fp8'" in line
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
    from core.search.queries import photo_vector
    from core.search.space import open_space

    ids, stored = load_matrix(embedded_demo, DEFAULT)
    path = embedded_demo.execute("SELECT path FROM images WHERE item_id = ?", (ids[0],)).fetchone()[0]
    monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
    vector = photo_vector(open_space(embedded_demo, DEFAULT), open(path, "rb").read())
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
    with pytest.raises(backends.BackendError, match="auto, int8 or fp32"):
        backends.select_precision("fp8")


@pytest.fixture
def int8_catalog(demo_catalog, models, tmp_path, monkeypatch):
    """The demo catalog (300 photos, with categories) and a tiny random ViT, on a CPU said to have VNNI,
    with a user-wide cache of this test's own (`tmp_path / "cache"`)."""
    from core.methods import openvino_int8

    save_tiny_vit(models / "vit", hidden_size=64, intermediate_size=128)
    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LOOKALIKE_BACKEND", "openvino")
    monkeypatch.setattr(openvino_int8, "int8_units", lambda: "VNNI")
    return demo_catalog


def int8_verdict(cache: Path):
    from core.methods import openvino_int8

    [record] = [json.loads(p.read_text()) for p in cache.glob("vit-*/*/entry.json") if "verdict" in p.read_text()]
    return openvino_int8.Verdict(**record["notes"]["verdict"])


def test_an_int8_model_that_fails_its_check_is_not_used(int8_catalog, tmp_path, monkeypatch):
    """A really degraded int8 model (calibrated on black photos, so real photos overflow its ranges):
    the check sees its cosines, it is not used (float instead, and why in one line), not by `auto`
    either, and the check is not run again."""
    from core.methods import openvino_int8

    real = openvino_int8.quantise
    monkeypatch.setattr(
        openvino_int8, "quantise", lambda model, pixels, shape, photos: real(model, pixels, shape, 0 * photos)
    )
    backends.select_precision("int8")
    extractor = create_extractor("vit", int8_catalog)
    batch = extractor.preprocess([load_rgb(p) for p in sorted((DEMO / "images").glob("*.jpg"))[:4]])
    verdict = int8_verdict(tmp_path / "cache")
    assert not verdict.passed and verdict.min_cosine < openvino_int8.MIN_COSINE
    assert extractor.precision in ("bf16", "fp32") and "int8 not used" in extractor.precision_note
    assert "\n" not in extractor.precision_note and f"min {verdict.min_cosine:.3f}" in extractor.precision_note
    backends.select_precision("auto")
    monkeypatch.setattr(openvino_int8, "verdict", never)  # recorded: not checked again
    again = create_extractor("vit", int8_catalog)
    assert again.precision != "int8" and again.precision_note == extractor.precision_note
    assert cosines(again.embed_batch(batch), extractor.embed_batch(batch)).min() >= 0.999


def test_int8_that_keeps_the_answers_is_used_and_auto_takes_it(int8_catalog, tmp_path, monkeypatch):
    """The tiny ViT quantised on the catalog's photos, with the bar lowered to what a random 2-layer
    model can keep: int8 is used (its vectors differ from float's, yet close), and `auto` then runs it
    on this catalog (this CPU said to have VNNI), not on one it was not checked on."""
    from core.methods import openvino_int8

    monkeypatch.setattr(openvino_int8, "MIN_COSINE", 0.9)
    monkeypatch.setattr(openvino_int8, "MAX_P10_DROP", 0.1)
    photos = [load_rgb(p) for p in sorted((DEMO / "images").glob("*.jpg"))[:8]]
    backends.select_precision("fp32")
    exact = create_extractor("vit", int8_catalog)
    backends.select_precision("int8")
    int8 = create_extractor("vit", int8_catalog)
    assert int8.precision == "int8" and int8.precision_note is None and int8_verdict(tmp_path / "cache").passed
    batch = int8.preprocess(photos)
    cosine = cosines(int8.embed_batch(batch), exact.embed_batch(batch))
    assert cosine.min() >= 0.9 and cosine.max() < 0.99999
    backends.select_precision("auto")
    assert create_extractor("vit", int8_catalog).precision == "int8"
    assert create_extractor("vit").precision != "int8"  # no catalog: nothing to check on
