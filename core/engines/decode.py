"""Decoding and resizing photos off the model's thread, in worker threads or worker processes.

The model's thread asks for batches in order; workers decode and preprocess a bounded number of
small chunks ahead (at most `2 x workers` chunks, and one whole batch, in flight), so memory
stays bounded however long the catalog. Threads suit the CPU path, where the model needs the
same cores; processes (as many as cores) are what feeds a GPU, since one interpreter's threads
cannot decode thousands of JPEGs a second. Work sent to a process must be picklable: the
preprocessing is a plain function or a `core.methods.preprocess.Pixels`.

With `Pixels`, the fast path most models take, a JPEG is decoded at reduced size straight away
(`PIL.Image.draft`: the decoder scales by 1/2, 1/4 or 1/8 in the DCT, never below the model's
input size), resized, and shipped as uint8 NHWC, a quarter of float32's bytes through a process
pipe; the model's side normalises it (`Pixels.normalise`, or inside the compiled model).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
from PIL import Image

from core.catalog.images import ImageError, load_rgb
from core.methods.preprocess import Pixels
from core.settings import available_cores

log = logging.getLogger(__name__)

CHUNK = 32  # photos per worker task
THREAD_WORKERS = 2  # the CPU path's decode threads (docs/benchmarks.md)

Preprocess = Callable[[list[Image.Image]], object] | None


def read_photo(path: str | None, url: str | None = None, draft: int | None = None) -> Image.Image:
    """A photo from a path this worker sees, else fetched from its URL (cluster workers).

    draft: a JPEG may be decoded reduced, to no less than draft x draft pixels.
    """
    try:
        if path is None:
            raise ImageError("no photo file")
        return load_rgb(path, draft)
    except ImageError as missing:
        if not url or (path and Path(path).exists()):
            raise
        from core.catalog.download import DownloadError, fetch, session

        with tempfile.TemporaryDirectory() as folder:
            try:
                return load_rgb(fetch(url, Path(folder) / "photo", session()), draft)
            except DownloadError as exc:
                raise ImageError(f"{missing}; {exc}") from None


def decode_chunk(
    sources: Sequence[tuple[str | None, str | None]], preprocess: Preprocess
) -> tuple[list[int], object, list[tuple[int, str]]]:
    """Decode (path, url) sources: (indices decoded, preprocessed batch or images, (index, reason) failures)."""
    good, images, failures = [], [], []
    draft = preprocess.draft if isinstance(preprocess, Pixels) else None
    for n, (path, url) in enumerate(sources):
        try:
            images.append(read_photo(path, url, draft))
            good.append(n)
        except ImageError as exc:
            failures.append((n, str(exc)))
    if not images:
        return good, None, failures
    return good, preprocess(images) if preprocess else images, failures


def picklable(function: object) -> bool:
    try:
        pickle.dumps(function)
        return True
    except Exception:  # noqa: BLE001 - any pickling failure means "keep it in this process"
        return False


def cores() -> int:
    return available_cores()


def _executor(processes: bool, workers: int) -> Executor:
    if not processes:
        return ThreadPoolExecutor(workers, thread_name_prefix="decode")
    # forkserver/spawn: never fork a process that holds CUDA or OpenMP state
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    with _main_script_hidden():
        started = [pool.submit(os.getpid) for _ in range(workers)]  # every worker starts now
        wait(started)
    return pool


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Start workers without re-running the caller's script in each of them.

    A new worker runs the parent's `__main__` file again unless that module was imported by
    name (`python -m core`). The workers need only importable functions, and a script run by
    another program (Streamlit runs streamlit_app/Home.py as `__main__`) must not run twice.
    """
    main = sys.modules.get("__main__")
    script = None if main is None or getattr(main, "__spec__", None) else main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        if main is not None and script is not None:
            main.__file__ = script


def _merge(parts: list[tuple[list[int], object, list[tuple[int, str]]]], offsets: list[int]):
    good, failures = [], []
    inputs: list = []  # NumPy batches, or lists of photos
    for (indices, batch, failed), offset in zip(parts, offsets):
        good += [offset + i for i in indices]
        failures += [(offset + i, reason) for i, reason in failed]
        if batch is not None:
            inputs.append(batch)
    if not inputs:
        return good, None, failures
    merged: object = (
        np.concatenate(inputs) if isinstance(inputs[0], np.ndarray) else [img for part in inputs for img in part]
    )
    return good, merged, failures


def decoded_batches(
    batches: Sequence[Sequence],
    preprocess: Preprocess,
    processes: bool = False,
    workers: int | None = None,
    source: Callable = lambda item: (item.path, None),
) -> Iterator[tuple[list, object, list]]:
    """For each batch of items, in order: (decoded items, preprocessed inputs, (item, reason) failures)."""
    if processes and not picklable(preprocess):
        log.warning("preprocessing %r cannot be sent to worker processes; decoding in threads", preprocess)
        processes = False
    workers = workers or (cores() if processes else THREAD_WORKERS)
    jobs = ((b, start) for b, batch in enumerate(batches) for start in range(0, len(batch), CHUNK))
    limit = max(2 * workers, -(-max((len(b) for b in batches), default=0) // CHUNK))
    with _executor(processes, workers) as pool:
        queue: deque = deque()

        def submit_next() -> None:
            job = next(jobs, None)
            if job is not None:
                b, start = job
                chunk = [source(item) for item in batches[b][start : start + CHUNK]]
                queue.append((b, start, pool.submit(decode_chunk, chunk, preprocess)))

        for _ in range(limit):
            submit_next()
        for b, batch in enumerate(batches):
            parts, offsets = [], []
            while queue and queue[0][0] == b:
                _, start, future = queue.popleft()
                parts.append(future.result())
                offsets.append(start)
                submit_next()
            good, inputs, failures = _merge(parts, offsets)
            yield [batch[i] for i in good], inputs, [(batch[i], reason) for i, reason in failures]
