"""The decode pipeline: threads or processes give the same batches, in order, with bounded work ahead."""

from __future__ import annotations

import pickle
from functools import partial

import numpy as np
from PIL import Image

from core.catalog.images import load_rgb
from core.catalog.vectors import Pending, load_matrix
from core.engines import decode
from core.engines.decode import decoded_batches
from core.engines.embed import embed_catalog
from core.methods import create_extractor
from core.methods.preprocess import Pixels, to_array

from helpers import DEMO, save_tiny_vit

PREPROCESS = partial(to_array, size=64, mean=(0.5,) * 3, std=(0.5,) * 3)


def items(n: int, broken_at: int | None = None, tmp_path=None) -> list[Pending]:
    paths = [str(p) for p in sorted((DEMO / "images").glob("*.jpg"))[:n]]
    if broken_at is not None:
        broken = tmp_path / "broken.jpg"
        broken.write_bytes(b"\xff\xd8\xff not a jpeg")
        paths[broken_at] = str(broken)
    return [Pending(f"i{n:03}", path, None, "h") for n, path in enumerate(paths)]


def test_processes_and_threads_decode_the_same_batches_in_order(tmp_path):
    todo = items(100, broken_at=37, tmp_path=tmp_path)
    batches = [todo[i : i + 40] for i in range(0, 100, 40)]
    by_threads = list(decoded_batches(batches, PREPROCESS, processes=False))
    by_processes = list(decoded_batches(batches, PREPROCESS, processes=True, workers=2))
    for (good_t, x_t, bad_t), (good_p, x_p, bad_p), batch in zip(by_threads, by_processes, batches):
        assert good_t == good_p and np.array_equal(x_t, x_p) and bad_t == bad_p
        assert [p.item_id for p in good_t] == [p.item_id for p in batch if p.item_id != "i037"]
    assert [(p.item_id, "corrupt" in r or "not a readable" in r) for p, r in by_processes[0][2]] == [("i037", True)]
    assert np.array_equal(by_threads[1][1][0], PREPROCESS([load_rgb(todo[40].path)])[0])


def test_workers_never_rerun_a_script_that_another_program_runs_as_main(tmp_path, monkeypatch):
    """Streamlit runs Home.py as `__main__`: decode workers must not run it again."""
    import sys
    import types

    marker = tmp_path / "ran"
    script = tmp_path / "app_page.py"
    script.write_text(f"open({str(marker)!r}, 'a').write('x')\n", encoding="utf-8")
    fake = types.ModuleType("__main__")
    fake.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake)
    todo = items(8)
    [(good, batch, failures)] = decoded_batches([todo], PREPROCESS, processes=True, workers=2)
    assert len(good) == 8 and batch.shape == (8, 3, 64, 64) and not failures
    assert not marker.exists() and fake.__file__ == str(script)


def test_work_ahead_is_bounded():
    decoded = []

    def counting(images):
        decoded.append(len(images))
        return PREPROCESS(images)

    todo = items(300)
    stream = decoded_batches([todo[i : i + 32] for i in range(0, 300, 32)], counting, processes=False, workers=2)
    next(stream)
    assert sum(decoded) <= 32 * 5  # the batch taken plus at most 2 x workers chunks ahead, not all 300
    assert sum(len(batch) for batch, _, _ in stream) == 300 - 32


def tiny_vit(catalog) -> None:
    """A ViT with random weights (224-px photos, 32-px patches) saved where `vit` looks first."""
    save_tiny_vit(catalog.models_dir / "vit", image_size=224, patch_size=32)


def test_image_models_preprocess_with_picklable_functions(demo_catalog):
    tiny_vit(demo_catalog)
    photos = [load_rgb(p.path) for p in items(2)]
    for method in ("efficientnet_lite0", "vit"):
        preprocess = create_extractor(method, demo_catalog).preprocess
        assert decode.picklable(preprocess)
        assert np.array_equal(pickle.loads(pickle.dumps(preprocess))(photos), preprocess(photos))


def test_embedding_with_decode_processes_gives_the_thread_vectors(demo_catalog):
    tiny_vit(demo_catalog)
    for method in ("efficientnet_lite0", "vit"):
        embed_catalog(demo_catalog, method, limit=48, progress=False, processes=False)
        ids, by_threads = load_matrix(demo_catalog, method)
        demo_catalog.execute("DELETE FROM embeddings")
        demo_catalog.conn.commit()
        embed_catalog(demo_catalog, method, limit=48, progress=False, processes=True)
        assert load_matrix(demo_catalog, method)[0] == ids and len(ids) == 48
        assert np.abs(load_matrix(demo_catalog, method)[1] - by_threads).max() < 1e-6


def test_pixels_ship_uint8_and_the_model_side_normalises_them_as_before():
    pixels = Pixels(64, (0.5,) * 3, (0.5,) * 3)
    photos = [load_rgb(p.path) for p in items(3)]
    shipped = pixels(photos)
    assert shipped.dtype == np.uint8 and shipped.shape == (3, 64, 64, 3)  # a quarter of float32's bytes
    assert np.array_equal(pixels.normalise(shipped), PREPROCESS(photos))
    assert pickle.loads(pickle.dumps(pixels)) == pixels  # travels to decode processes


def test_a_large_jpeg_is_decoded_reduced_and_embeds_the_same(tmp_path):
    """A 1200 x 1600 shopper-size JPEG decodes at 1/4 scale (never under the model's size) and
    gives the default method's vector of the full decode to cosine 0.998."""
    small = Image.open(items(1)[0].path)
    big = tmp_path / "big.jpg"
    small.resize((1200, 1600), Image.BICUBIC).save(big, quality=90)
    reduced = load_rgb(big, draft=224)
    assert reduced.size == (300, 400) and load_rgb(big).size == (1200, 1600)
    extractor = create_extractor("efficientnet_lite0")
    [[full], [drafted]] = [extractor.embed_batch(extractor.preprocess([img])) for img in (load_rgb(big), reduced)]
    assert float(full @ drafted) > 0.998
    [(good, batch, _)] = decoded_batches([[Pending("big", str(big), None, "h")]], extractor.preprocess)
    assert np.array_equal(batch, extractor.preprocess([reduced]))  # the pipeline decodes reduced too
