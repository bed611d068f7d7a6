"""Batch embedding of the catalog (resumable) and single-photo embedding for uploads.

Only items whose vector is missing or outdated (method version or photo changed) are computed.
Each batch is committed as soon as it is done, so an interrupted run loses at most one batch
and the next run carries on. Photos are decoded and preprocessed in worker threads (worker
processes when the model runs on a GPU, core/engines/decode.py) while the model runs on the previous
batch. Photos that cannot be decoded are recorded in `embedding_failures` and skipped until
their photo changes (or `--retry-failed`); photos that cannot be reached (a missing file, an I/O
error) are not recorded, so the next run tries them again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from core.catalog import vectors
from core.catalog.db import Catalog
from core.catalog.images import UNAVAILABLE, load_rgb, unavailable
from core.engines.decode import decoded_batches
from core.files.failures import how_far
from core.methods import DerivedExtractor, Extractor, ImageExtractor, create_extractor, devices, get_spec
from core.methods.base import photo_reader, text_reader

log = logging.getLogger(__name__)

DEFAULT_BATCH = devices.CPU_BATCH
DERIVED_BATCH = 512  # items per read-combine-store step of a derived method


@dataclass
class EmbedReport:
    method: str
    version: str
    pending: int = 0
    embedded: int = 0
    failed: int = 0  # photos that cannot be decoded (recorded, skipped until they change)
    unavailable: int = 0  # photos missing or unreadable this time (tried again on the next run)
    seconds: float = 0.0  # from the first decoded batch to the end: what `rate` divides by
    startup: float = 0.0  # before it: batch-size probe, decode workers' start, the first batch's decode
    missing_parts: dict[str, int] = field(default_factory=dict)  # derived: part -> items lacking a current vector
    backend: str | None = None  # the runtime that ran the model (openvino, onnx, torch)
    precision: str | None = None
    precision_note: str | None = None  # why the precision is not the one asked for (int8), one line

    @property
    def rate(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "images_per_second": round(self.rate, 1)}


def embed_catalog(
    db: Catalog,
    method: str,
    batch_size: int | None = None,
    limit: int | None = None,
    progress: bool = True,
    extractor: Extractor | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    processes: bool | None = None,
    retry_failed: bool = False,
) -> EmbedReport:
    """Compute and store every missing or outdated vector of `method`.

    retry_failed: try again the photos recorded as undecodable (they are skipped otherwise).
    batch_size None: 32 on the CPU, what fits in memory on a GPU (core.methods.devices). processes: decode
    in worker processes (default on a GPU) rather than threads (default on the CPU, faster there).
    """
    for name, value in (("batch_size", batch_size), ("limit", limit)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    spec = get_spec(method, db)
    if spec.derived:
        derived = extractor or create_extractor(method, db)
        if not isinstance(derived, DerivedExtractor):
            raise TypeError(f"{method} is derived: its extractor combines its parts' vectors")
        return _embed_derived(db, derived, batch_size, limit, progress, on_progress, retry_failed)
    version = extractor.spec.version if extractor else spec.resolved(db).version
    todo = pending(db, method, version, spec.kind, limit, retry_failed)
    report = EmbedReport(method, version, pending=len(todo))
    if not todo:  # nothing to do: no model is loaded, no progress bar drawn
        return report
    extractor = extractor or create_extractor(method, db)
    if extractor.spec.version != version:  # a method fitted on first use (words) has its version once fitted
        version = extractor.spec.version
        todo = pending(db, method, version, spec.kind, limit, retry_failed)
        report = EmbedReport(method, version, pending=len(todo))
    report.backend = getattr(extractor, "backend", None)
    report.precision = getattr(extractor, "precision", None)
    report.precision_note = getattr(extractor, "precision_note", None)
    start = time.perf_counter()
    # a method that runs no torch model (colour histograms) needs no device: LOOKALIKE_DEVICE is not asked
    placement = devices.current() if spec.runs_model else devices.Placement()
    run: Callable[..., np.ndarray]  # a batch of texts or of preprocessed photos -> unit vectors
    if spec.kind == "text":
        batch_size = batch_size or DEFAULT_BATCH
        run = text_reader(extractor).embed_texts
    else:
        batch_size = devices.batch_size(extractor, batch_size, placement)
        forward = photo_reader(extractor).embed_batch
        run = devices.FittingForward(forward) if placement.is_gpu else forward
    bar = tqdm(
        total=len(todo),
        desc=f"embed {method}",
        unit=" img" if spec.kind == "image" else " items",
        disable=not (progress and todo),
    )
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    stream = (
        _text_batches(batches)
        if spec.kind == "text"
        else decoded_batches(
            batches, photo_reader(extractor).preprocess, placement.is_gpu if processes is None else processes
        )
    )
    try:
        with how_far(lambda: _done(report)):
            for batch, inputs, failures in _clocked(stream, report, start):
                for item, reason in failures:
                    note_failure(db, report, item.item_id, item.source_hash, reason)
                if batch:
                    matrix = run(inputs)
                    vectors.store(db, method, version, ((p.item_id, v, p.source_hash) for p, v in zip(batch, matrix)))
                    report.embedded += len(batch)
                bar.update(len(batch) + len(failures))
                if on_progress:
                    on_progress(report.embedded + report.failed + report.unavailable, report.pending)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start - report.startup
    serve_when_complete(db, report, limit)
    return report


def serve_when_complete(db: Catalog, report: EmbedReport, limit: int | None) -> None:
    """After a run that covered everything pending (not cut short by `limit`), a new version embedded
    beside the served one replaces it (core/catalog/vectors.py: promote)."""
    covered = limit is None or report.pending < limit
    staged = vectors.next_version(db, report.method, "image")
    if covered and staged is not None and staged.version == report.version:
        served = vectors.promote(db, report.method, report.version)
        log.info("%s: version %s complete, now served (%d vectors)", report.method, report.version, served)


def _clocked(stream: Iterator, report: EmbedReport, start: float) -> Iterator:
    """`stream`, noting in `report.startup` how long after `start` its first batch came."""
    for n, batch in enumerate(stream):
        if n == 0:
            report.startup = time.perf_counter() - start
        yield batch


def pending(db: Catalog, method: str, version: str, kind: str, limit: int | None, retry_failed: bool) -> list:
    """The items to embed: failures recorded as unreachable by older versions are always tried again,
    undecodable ones only with `retry_failed`."""
    vectors.forget_failures(db, method, () if retry_failed else UNAVAILABLE)
    return vectors.pending(db, method, version, kind, limit)


def note_failure(db: Catalog, report: EmbedReport, item_id: str, source_hash: str, reason: str) -> None:
    """Count a photo that was not embedded; record it unless it may be readable next time."""
    if unavailable(reason):
        report.unavailable += 1
        log.warning("%s: item %s not embedded this time (tried again next run): %s", report.method, item_id, reason)
        return
    vectors.record_failure(db, report.method, report.version, item_id, source_hash, reason)
    report.failed += 1
    log.warning("%s: item %s skipped: %s", report.method, item_id, reason)


def _done(report: EmbedReport) -> str:
    return f"{report.embedded} of {report.pending} embedded"


def _text_batches(batches) -> Iterator[tuple[list, list[str], list]]:
    for batch in batches:
        yield batch, [p.text or "" for p in batch], []


def _embed_derived(
    db: Catalog,
    extractor: DerivedExtractor,
    batch_size: int | None,
    limit: int | None,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
    retry_failed: bool = False,
) -> EmbedReport:
    """A derived method's vectors, combined from its parts' stored vectors made from the item's
    current photo. The parts are embedded first when the extractor `embeds_parts`; otherwise items
    lacking a current part vector are skipped and counted per part in `missing_parts`."""
    spec = extractor.spec
    if extractor.embeds_parts:
        for part in spec.parts:
            embed_catalog(db, part, batch_size, limit, progress, retry_failed=retry_failed)
    todo = vectors.pending(db, spec.name, spec.version, spec.kind, limit)
    report = EmbedReport(spec.name, spec.version, pending=len(todo))
    start = time.perf_counter()
    with how_far(lambda: _done(report)):
        for offset in tqdm(
            range(0, len(todo), DERIVED_BATCH), desc=f"embed {spec.name}", disable=not (progress and todo)
        ):
            batch = todo[offset : offset + DERIVED_BATCH]
            sources = {item.item_id: item.source_hash for item in batch}
            stored = {part: vectors.current_vectors(db, part, sources) for part in spec.parts}
            ready = [item for item in batch if all(item.item_id in found for found in stored.values())]
            report.failed += len(batch) - len(ready)
            if not extractor.embeds_parts:
                for part, found in stored.items():
                    if len(found) < len(batch):
                        report.missing_parts[part] = report.missing_parts.get(part, 0) + len(batch) - len(found)
            if ready:
                parts = {part: np.stack([found[item.item_id] for item in ready]) for part, found in stored.items()}
                matrix = extractor.derive(parts | extractor.item_inputs([item.item_id for item in ready]))
                report.embedded += vectors.store(
                    db, spec.name, spec.version, ((item.item_id, v, item.source_hash) for item, v in zip(ready, matrix))
                )
            if on_progress:
                on_progress(report.embedded + report.failed, report.pending)
    report.seconds = time.perf_counter() - start
    serve_when_complete(db, report, limit)
    return report


def embed_image(
    data: bytes, method: str, catalog: Catalog | None = None, extractor: ImageExtractor | None = None
) -> np.ndarray:
    """One uploaded photo's vector, with the same preprocessing as catalog vectors."""
    image = load_rgb(data)
    model = extractor or photo_reader(create_extractor(method, catalog))
    return model.embed_images([image])[0]
