"""OpenVINO on the CPU: convert a model once, keep it, compile it for throughput at the CPU's best precision.

- Conversion: from the default's ONNX export (made only when a conversion is needed), or straight
  from a torch module (`openvino.convert_model`), once per user: the converted model is an entry of
  the user-wide cache (core/methods/model_cache.py, `LOOKALIKE_CACHE`), keyed by the method, its
  weights' digest, the input shape and the converters' versions, shared by every catalog and
  process. OpenVINO's compiled-blob cache (`CACHE_DIR`) sits in the entry, one folder per
  precision (`compiled-bf16`, `compiled-fp32`: its key ignores the precision), which makes the next
  start-up a file read.
- Verified when loaded: the entry's files against the digests recorded when they were written (a
  mismatch converts anew), and the compiled model's answer to a fixed reference input against the
  one recorded when it was first compiled (a mismatch drops the blobs and compiles anew; if that
  still differs, converts anew). A damaged file is replaced once, not reported on every run.
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
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from importlib import metadata
from pathlib import Path

import numpy as np
import openvino as ov
from openvino.preprocess import PrePostProcessor

from core.catalog.db import Catalog
from core.methods import backends, model_cache, openvino_cpu, openvino_int8
from core.methods.base import ImageExtractor
from core.methods.distances import unit
from core.methods.preprocess import Pixels
from core.methods.spec import MethodSpec
from core.settings import settings

log = logging.getLogger(__name__)

PER_REQUEST = 8  # photos in one inference request when a batch has that many (OpenVinoImageExtractor)
REFERENCE_COSINE = 0.999  # a compiled model's answer to the reference input against the recorded one


def precision(method: str, requested: str | None = None) -> str:
    """`bf16` or `fp32` for `method` on this CPU (`requested`: auto|fp32, default the selected one)."""
    return openvino_cpu.precision(method, requested or backends.precision())


def reference_input(pixels: Pixels | None, shape: tuple[int, ...], photos: int) -> np.ndarray:
    """A fixed photo-like input (gradients and stripes), `photos` times: what a compiled model's
    answer is recorded and checked on. uint8 NHWC for a Pixels model, else a float batch."""
    side = shape[-1]
    ramp = np.linspace(0.0, 1.0, side, dtype=np.float32)
    x, y = np.meshgrid(ramp, ramp)
    image = np.stack([x, y, 0.5 + 0.5 * np.sin(12 * (x + y))], axis=-1)  # H x W x 3 in [0, 1]
    one: np.ndarray
    if pixels is not None:
        one = (image * 255).round().astype(np.uint8)[None]
    else:
        one = np.resize(image.transpose(2, 0, 1) * 2 - 1, shape[1:]).astype(np.float32)[None]
    return np.repeat(one, photos, axis=0)


def converted(entry: model_cache.Entry, convert: Callable[[], ov.Model], anew: bool = False):
    """The entry's model and record (call with the entry locked): read when its files match their
    recorded digests, else (or `anew`) converted and saved in their place first."""
    record = None if anew else entry.record()
    if record is not None:
        try:
            return openvino_cpu.runtime().read_model(entry.xml), record
        except RuntimeError as exc:  # digests match, yet OpenVINO cannot read it: made anew
            log.warning("cannot read %s, converting it anew: %s", entry.xml, exc)
    log.info("converting %s for OpenVINO (once for this user: %s)", entry.folder.parent.name, entry.folder)
    record = entry.build(lambda xml: ov.save_model(convert(), xml, compress_to_fp16=False))
    return openvino_cpu.runtime().read_model(entry.xml), record


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


def compile_model(model: ov.Model, chosen: str, blobs: Path) -> ov.CompiledModel:
    """Compiled at `chosen` (bf16|fp32), with a blob cache (`blobs`) of that precision only: OpenVINO's
    cache key (2026.4) ignores the precision hint, and a transformer compiled for bfloat16 that reads
    the float32 blob answers NaN."""
    config = {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "INFERENCE_PRECISION_HINT": "bf16" if chosen == "bf16" else "f32",
        "INFERENCE_NUM_THREADS": settings().threads,
        "CACHE_DIR": str(blobs),
    }
    return openvino_cpu.runtime().compile_model(model, "CPU", config)


@dataclass(frozen=True)
class Compiled:
    """One network compiled for one photo a request and for PER_REQUEST photos a request."""

    single: ov.CompiledModel
    bulk: ov.CompiledModel
    precision: str  # bf16 | fp32 (what OpenVINO computes in)


def compiled_pair(model: ov.Model, pixels: Pixels | None, shape: tuple, chosen: str, blobs: Path) -> Compiled:
    one = compile_model(with_input(model.clone(), pixels, shape), chosen, blobs)
    return Compiled(one, compile_model(with_input(model.clone(), pixels, shape, PER_REQUEST), chosen, blobs), chosen)


def answers(compiled: Compiled, pixels: Pixels | None, shape: tuple) -> np.ndarray:
    """Unit vectors of the reference input: one photo a request, then PER_REQUEST photos a request."""
    one = compiled.single.create_infer_request().infer({0: reference_input(pixels, shape, 1)})[0]
    many = compiled.bulk.create_infer_request().infer({0: reference_input(pixels, shape, PER_REQUEST)})[0]
    vectors = np.concatenate([one.reshape(1, -1), many.reshape(PER_REQUEST, -1)]).astype(np.float32)
    with np.errstate(all="ignore"):  # a damaged model may answer zeros or NaN: the check fails on them
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def checked(entry: model_cache.Entry, record, model: ov.Model, pixels, shape, chosen: str) -> Compiled | None:
    """The entry's model compiled at `chosen`, its answer to the reference input checked against the
    one recorded when it was first compiled (recorded now if none was): a damaged compiled blob is
    dropped and compiled anew; None when even that answers differently (then the entry is converted anew)."""
    key, blobs = f"reference-{chosen}", entry.folder / f"compiled-{chosen}"
    if key not in record.notes:
        shutil.rmtree(blobs, ignore_errors=True)  # no answer to check a kept blob against
    for _ in range(2):
        compiled = compiled_pair(model, pixels, shape, chosen, blobs)
        got = answers(compiled, pixels, shape)
        if not np.isfinite(got).all():
            cosine = float("nan")
        elif key not in record.notes:
            record.notes[key] = got[0].tolist()
            entry.save_notes(record)
            return compiled
        else:
            cosine = float((got @ np.asarray(record.notes[key], np.float32)).min())
            if cosine >= REFERENCE_COSINE:
                return compiled
        log.warning(
            "%s (%s) answers differently than when made (cosine %.4f): compiling it anew", entry.folder, chosen, cosine
        )
        shutil.rmtree(blobs, ignore_errors=True)
    return None


def load(entry: model_cache.Entry, convert: Callable[[], ov.Model], pixels, shape, chosen: str) -> Compiled:
    """The entry's model, converted if needed, compiled and checked, with the entry locked (see model_cache)."""
    with entry.locked():
        for anew in (False, True):
            model, record = converted(entry, convert, anew)
            compiled = checked(entry, record, model, pixels, shape, chosen)
            if compiled is not None:
                return compiled
            log.warning("%s: converting it anew", entry.folder)
    raise RuntimeError(f"OpenVINO's model in {entry.folder} does not give its recorded answer, even converted anew")


class OpenVinoImageExtractor(ImageExtractor):
    """Two compiled models of one network: batches go out as requests of PER_REQUEST photos (more work
    per request keeps the matrix units busy: ViT-B/16 in bfloat16 runs 1.2x, CLIP ViT-B/32 1.7x faster
    than one photo a request here), what is left one photo a request; as many requests in flight as
    OpenVINO wants."""

    backend = "openvino"
    precision_note: str | None = None  # why the precision is not the one asked (int8), in one line

    def __init__(self, spec: MethodSpec, catalog: Catalog | None, compiled: Compiled, preprocess):
        super().__init__(spec, catalog)
        self.preprocess = preprocess
        self.precision = compiled.precision
        self.width = compiled.single.outputs[0].get_partial_shape()[-1].get_length()
        self.queues = {1: ov.AsyncInferQueue(compiled.single), PER_REQUEST: ov.AsyncInferQueue(compiled.bulk)}
        for photos, queue in self.queues.items():
            queue.set_callback(partial(self._collect, photos))
        self.lock = threading.Lock()  # one batch at a time (the app's sessions share an extractor)
        self.out = np.empty((0, self.width), np.float32)  # each batch's rows, filled by the queues' callbacks

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


def libraries(*names: str) -> dict[str, str]:
    """OpenVINO's release and the installed versions of `names` (what made the model): part of an entry's key."""
    versions = {"openvino": openvino_cpu.version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "none"
    return versions


def with_int8(
    spec: MethodSpec, catalog: Catalog | None, base: model_cache.Entry, compiled: Compiled, preprocess, shape
) -> tuple[Compiled, str | None]:
    """The int8 model of `base` for this catalog where the precision asks for it and it passed its check
    (openvino_int8.py), else `compiled`; and why not, in one line (None when nothing was asked)."""
    requested = backends.precision()
    units = openvino_int8.int8_units()
    if requested == "fp32" or (requested == "auto" and units is None):
        return compiled, None
    nncf = openvino_int8.nncf_version()
    if catalog is None or nncf is None:
        return compiled, "int8 needs a catalog's photos and the nncf package" if requested == "int8" else None
    sample = openvino_int8.sample(catalog)
    if isinstance(sample, str):
        return compiled, sample if requested == "int8" else None
    entry = model_cache.entry(base.folder.parent.name, "int8", sample.digest, base=base.folder.name, nncf=nncf)
    recorded = entry.record()
    checked_before = recorded.notes.get("verdict") if recorded is not None else None
    if requested == "auto" and checked_before is None:
        return compiled, "int8 not checked on this catalog yet (embed --precision int8 checks it)"
    if checked_before is not None and not checked_before["passed"]:  # refused before: not loaded again
        return compiled, openvino_int8.Verdict(**checked_before).why
    pixels = preprocess if isinstance(preprocess, Pixels) else None

    def quantised() -> ov.Model:
        float_model = openvino_cpu.runtime().read_model(base.xml)
        calibration = openvino_int8.photos(sample.calibration, preprocess)
        return openvino_int8.quantise(float_model, pixels, shape, calibration)

    try:
        int8 = replace(load(entry, quantised, pixels, shape, compiled.precision), precision="int8")
        with entry.locked():
            record = entry.record()
            if record is None:  # load() records every entry it makes
                raise RuntimeError(f"the int8 model of {spec.name} has no record in the model cache")
            if "verdict" not in record.notes:
                check = openvino_int8.photos(sample.check, preprocess)
                found = openvino_int8.verdict(
                    unit(OpenVinoImageExtractor(spec, catalog, int8, preprocess).forward(check)),
                    unit(OpenVinoImageExtractor(spec, catalog, compiled, preprocess).forward(check)),
                    sample.categories,
                )
                record.notes["verdict"] = asdict(found)
                entry.save_notes(record)
                log.warning("%s: %s", spec.name, found.why)
        found = openvino_int8.Verdict(**record.notes["verdict"])
    except Exception as exc:  # quantisation or a photo went wrong: the float model still answers
        log.warning("%s: int8 failed, using %s: %s", spec.name, compiled.precision, exc)
        return compiled, f"int8 failed: {exc}"
    if found.passed:
        return int8, None
    return compiled, found.why


def extractor(spec, catalog, entry, convert, preprocess, shape) -> OpenVinoImageExtractor:
    """The extractor of `entry` (converted by `convert()` when needed), int8 where asked and kept."""
    pixels = preprocess if isinstance(preprocess, Pixels) else None
    compiled = load(entry, convert, pixels, shape, precision(spec.name))
    compiled, note = with_int8(spec, catalog, entry, compiled, preprocess, shape)
    made = OpenVinoImageExtractor(spec, catalog, compiled, preprocess)
    made.precision_note = note
    return made


def from_torch(
    spec: MethodSpec, catalog: Catalog | None, module, example, digest: str, preprocess
) -> OpenVinoImageExtractor:
    """A torch module (`example`: an input tensor; `digest`: its weights') compiled by OpenVINO."""
    shape = tuple(example.shape)
    entry = model_cache.entry(
        spec.name,
        digest,
        "x".join(map(str, shape[1:])),
        source="torch",
        version=spec.version,
        **libraries("torch", "transformers", "timm"),
    )
    return extractor(spec, catalog, entry, lambda: ov.convert_model(module, example_input=example), preprocess, shape)


def from_onnx(
    spec: MethodSpec, catalog: Catalog | None, digest: str, export: Callable[[], Path], pixels: Pixels
) -> OpenVinoImageExtractor:
    """An ONNX export of weights with `digest`, made by `export()` only when it must be converted."""
    shape = (1, 3, pixels.size, pixels.size)
    entry = model_cache.entry(
        spec.name, digest, f"{pixels.size}", source="onnx", version=spec.version, **libraries("torch", "timm")
    )
    return extractor(spec, catalog, entry, lambda: ov.convert_model(export()), pixels, shape)
