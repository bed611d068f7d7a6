"""OpenVINO on the CPU: convert a model once, keep it, compile it for throughput at the CPU's best precision.

- Conversion: from the default's ONNX export, or straight from a torch module
  (`openvino.convert_model`), once. The converted model is saved in the method's models folder,
  `<models>/<method>/openvino-<OpenVINO version>/<method>-<weights digest>.xml`: new weights or a
  new OpenVINO mean a new file, so it is never stale. OpenVINO's own compiled-blob cache
  (`CACHE_DIR`) sits beside it, one folder per precision (`compiled-bf16`, `compiled-fp32`: its
  key ignores the precision), which makes the next start-up a file read.
- Input: a `Pixels` model (the default, the timm CNNs, the transformers) takes the decoders' uint8
  NHWC photos; the conversion to float, the normalisation and the layout change are compiled into
  the model (no NumPy pass). Other models (the autoencoder, a transformer whose processor runs
  whole) take a float NCHW batch.
- Precision: bfloat16 where the CPU has it (`BF16` in OpenVINO's CPU capabilities: AMX or
  AVX-512 BF16) and `--precision auto`, except for the methods in FP32_ONLY; float32 elsewhere.
- Throughput: `PERFORMANCE_HINT=THROUGHPUT` (one stream per core on this machine) and
  `AsyncInferQueue`s of PER_REQUEST photos a request (the rest of a batch one photo a request, so a
  single uploaded photo costs one photo's work), so every core runs while photos decode.

Only extractors import this module (it imports openvino): light commands never do.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import openvino as ov
from openvino.preprocess import PrePostProcessor

from core.catalog.db import Catalog
from core.methods import backends, openvino_cpu, weights
from core.methods.base import ImageExtractor
from core.methods.preprocess import Pixels
from core.methods.spec import MethodSpec
from core.settings import settings

log = logging.getLogger(__name__)

PER_REQUEST = 8  # photos in one inference request when a batch has that many (OpenVinoImageExtractor)


def precision(method: str, requested: str | None = None) -> str:
    """`bf16` or `fp32` for `method` on this CPU (`requested`: auto|fp32, default the selected one)."""
    return openvino_cpu.precision(method, requested or backends.precision())


def folder(method: str, catalog: Catalog | None) -> Path:
    return weights.local_dir(method, catalog) / f"openvino-{openvino_cpu.version()}"


def converted(path: Path, convert: Callable[[], ov.Model]) -> ov.Model:
    """The model saved at `path` (.xml + .bin), converted and saved first if it is not there yet.

    A new conversion replaces whatever the method's OpenVINO folders held (older weights, older
    OpenVINO releases, their compiled blobs): nothing stale stays on disk.
    """
    if path.exists() and path.with_suffix(".bin").exists():
        return openvino_cpu.runtime().read_model(path)
    log.info("converting %s for OpenVINO (once)", path.stem)
    model = convert()
    for old in path.parent.parent.glob("openvino-*"):
        shutil.rmtree(old, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        ov.save_model(model, staged, compress_to_fp16=False)
        shutil.move(staged.with_suffix(".bin"), path.with_suffix(".bin"))
        shutil.move(staged, path)  # the .xml last: its presence means both are whole
    return openvino_cpu.runtime().read_model(path)


def with_input(model: ov.Model, pixels: Pixels | None, shape: tuple[int, ...], photos: int = 1) -> ov.Model:
    """`photos` images per request (static shape); a Pixels model takes uint8 NHWC and normalises inside."""
    model.reshape({model.inputs[0].any_name: [photos, *shape[1:]]})
    if pixels is None:
        return model
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    steps = ppp.input().preprocess().convert_element_type(ov.Type.f32)
    steps.mean([255 * m for m in pixels.mean]).scale([255 * s for s in pixels.std])
    return ppp.build()


def compile_model(model: ov.Model, method: str, cache_dir: Path) -> ov.CompiledModel:
    """Compiled at the method's precision, with a blob cache of that precision only: OpenVINO's cache
    key (2026.4) ignores the precision hint, and a transformer compiled for bfloat16 that reads the
    float32 blob answers NaN."""
    chosen = precision(method)
    config = {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "INFERENCE_PRECISION_HINT": "bf16" if chosen == "bf16" else "f32",
        "INFERENCE_NUM_THREADS": settings().threads,
        "CACHE_DIR": str(cache_dir / f"compiled-{chosen}"),
    }
    return openvino_cpu.runtime().compile_model(model, "CPU", config)


class OpenVinoImageExtractor(ImageExtractor):
    """Two compiled models of one network: batches go out as requests of PER_REQUEST photos (more work
    per request keeps the matrix units busy: ViT-B/16 in bfloat16 runs 1.2x, CLIP ViT-B/32 1.7x faster
    than one photo a request here), what is left one photo a request; as many requests in flight as
    OpenVINO wants."""

    backend = "openvino"

    def __init__(self, spec: MethodSpec, catalog: Catalog | None, single: ov.CompiledModel, bulk, preprocess):
        super().__init__(spec, catalog)
        self.preprocess = preprocess
        self.precision = "bf16" if single.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16 else "fp32"
        self.width = single.outputs[0].get_partial_shape()[-1].get_length()
        self.queues = {1: ov.AsyncInferQueue(single), PER_REQUEST: ov.AsyncInferQueue(bulk)}
        for photos, queue in self.queues.items():
            queue.set_callback(partial(self._collect, photos))
        self.lock = threading.Lock()  # one batch at a time (the app's sessions share an extractor)
        self.out: np.ndarray | None = None

    def _collect(self, photos: int, request: ov.InferRequest, start: int) -> None:
        self.out[start : start + photos] = request.get_output_tensor(0).data.reshape(photos, -1)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            self.out = np.empty((len(batch), self.width), np.float32)
            whole = len(batch) - len(batch) % PER_REQUEST
            for start in range(0, whole, PER_REQUEST):
                self.queues[PER_REQUEST].start_async({0: batch[start : start + PER_REQUEST]}, start)
            for start in range(whole, len(batch)):
                self.queues[1].start_async({0: batch[start : start + 1]}, start)
            for queue in self.queues.values():
                queue.wait_all()
            return self.out


def compiled_pair(model: ov.Model, pixels: Pixels | None, shape: tuple, method: str, cache: Path):
    """The network compiled for one photo a request and for PER_REQUEST photos a request."""
    one = compile_model(with_input(model.clone(), pixels, shape), method, cache)
    return one, compile_model(with_input(model, pixels, shape, PER_REQUEST), method, cache)


def from_torch(
    spec: MethodSpec, catalog: Catalog | None, module, example, digest: str, preprocess
) -> OpenVinoImageExtractor:
    """A torch module (`example`: an input tensor; `digest`: its weights') compiled by OpenVINO."""
    pixels = preprocess if isinstance(preprocess, Pixels) else None
    shape = tuple(example.shape)
    path = folder(spec.name, catalog) / f"{spec.name}-{digest}-{'x'.join(map(str, shape[1:]))}.xml"
    model = converted(path, lambda: ov.convert_model(module, example_input=example))
    return OpenVinoImageExtractor(
        spec, catalog, *compiled_pair(model, pixels, shape, spec.name, path.parent), preprocess
    )


def from_onnx(spec: MethodSpec, catalog: Catalog | None, onnx: Path, pixels: Pixels) -> OpenVinoImageExtractor:
    """An ONNX export (its file name carries the weights' digest) compiled by OpenVINO."""
    path = folder(spec.name, catalog) / onnx.with_suffix(".xml").name
    model = converted(path, lambda: ov.convert_model(onnx))
    shape = (1, 3, pixels.size, pixels.size)
    return OpenVinoImageExtractor(spec, catalog, *compiled_pair(model, pixels, shape, spec.name, path.parent), pixels)
