"""Device choice, half precision, batch sizing and the GPU code path, exercised on the CPU."""

from __future__ import annotations

import json
import weakref

import numpy as np
import pytest
import torch

from core.catalog import vectors
from core.catalog.images import load_rgb
from core.cli import main
from core.engines.embed import embed_catalog
from core.methods import create_extractor, devices
from core.methods.preprocess import to_array

from helpers import DEMO, one_line, run_cli


@pytest.fixture
def no_gpu(monkeypatch):
    """A machine where CUDA is certainly absent (how CI and this machine are)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not devices.cuda_available()


def demo_photos(n: int) -> list:
    return [load_rgb(p) for p in sorted((DEMO / "images").glob("*.jpg"))[:n]]


def test_auto_means_cuda_only_where_torch_sees_one(monkeypatch, no_gpu):
    assert devices.resolve("auto") == "cpu" and devices.resolve("cpu") == "cpu"
    assert devices.current() == devices.Placement("cpu", None)  # float32 on the CPU
    monkeypatch.setattr(devices, "cuda_available", lambda: True)
    monkeypatch.setattr(devices, "half_dtype", lambda device: "bfloat16")
    assert devices.resolve("auto") == "cuda"
    assert devices.current() == devices.Placement("cuda", "bfloat16")
    assert devices.current(half="float16") == devices.Placement("cuda", "float16")  # a model's own choice
    monkeypatch.setenv("LOOKALIKE_DEVICE", "cpu")
    assert devices.resolve() == "cpu"  # the environment's choice
    with pytest.raises(ValueError, match="--device tpu is not a device"):
        devices.resolve("tpu")


def test_asking_for_a_missing_gpu_is_one_line_and_exit_2(catalog, db_path, capsys, no_gpu, monkeypatch):
    assert main(["embed", "--db", str(db_path), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --device cuda: torch sees no CUDA GPU on this machine; use --device cpu or auto"
    monkeypatch.setenv("LOOKALIKE_DEVICE", "cuda")
    assert main(["train-autoencoder", "--db", str(db_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.fixture
def old_driver(monkeypatch):
    """A node with an NVIDIA GPU and a 550 driver, which this CUDA 13.0 torch cannot use (faked probes)."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(devices, "_no_nvidia_driver", lambda: False)
    monkeypatch.setattr(devices, "_driver_version", lambda: "550.54.15")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(devices, "_warned", False)
    devices.unusable_gpu.cache_clear()
    yield
    devices.unusable_gpu.cache_clear()


def test_a_gpu_the_driver_is_too_old_for_is_named_with_the_driver_needed(old_driver, catalog, db_path, capsys, caplog):
    with caplog.at_level("WARNING", logger="core.methods.devices"):
        assert devices.resolve("auto") == "cpu" and devices.resolve("auto") == "cpu"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # auto says it once, then runs on the CPU
    assert "driver 550.54.15" in warnings[0] and "needs driver R580 or newer" in warnings[0]
    assert main(["embed", "--db", str(db_path), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CUDA 13.0, which needs driver R580 or newer" in err
    assert "docs/scale.md#older-nvidia-drivers" in err


def test_a_new_enough_driver_or_a_cpu_torch_gets_its_own_reason(old_driver, monkeypatch):
    monkeypatch.setattr(devices, "_driver_version", lambda: "580.65.06")
    assert "cannot open it" in devices.unusable_gpu()
    devices.unusable_gpu.cache_clear()
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "CPU-only build" in devices.unusable_gpu()
    devices.unusable_gpu.cache_clear()
    monkeypatch.setattr(devices, "_driver_version", lambda: None)  # no GPU at all: nothing to say
    assert devices.unusable_gpu() is None


def test_the_driver_version_is_read_from_the_kernel_module(monkeypatch, tmp_path):
    lines = {
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024": "550.54.15",
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build": "580.65.06",
    }
    real_path = devices.Path
    for line, version in lines.items():
        (tmp_path / "version").write_text(line + "\nGCC version:  gcc 12\n")
        monkeypatch.setattr(
            devices, "Path", lambda p: tmp_path / "version" if p == "/proc/driver/nvidia/version" else real_path(p)
        )
        assert devices._driver_version() == version


def test_methods_json_says_where_each_method_runs(catalog, db_path, capsys, no_gpu):
    assert main(["methods", "--db", str(db_path), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows["efficientnet_lite0"]) == {
        *("name", "kind", "available", "reason", "state", "todo", "vectors"),
        *("device", "backend", "precision"),
    }
    assert {r["device"] for r in rows.values()} == {"cpu"}
    assert devices.summary().device == "cpu" and devices.describe().startswith("cpu (CPU, ")


def test_batch_size_fits_the_free_memory():
    mib = 2**20
    assert devices.fit_batch(50 * mib, 10 * 2**30) == 128  # 0.7 x 10 GiB / 50 MiB = 143 -> 128
    assert devices.fit_batch(50 * mib, 10 * mib) == 1  # never below one photo
    assert devices.fit_batch(1 * mib, 140 * 2**30) == devices.MAX_GPU_BATCH


def test_gpu_batch_size_from_a_measured_item_and_faked_free_memory(monkeypatch, no_gpu):
    extractor = create_extractor("efficientnet_lite0")
    assert devices.batch_size(extractor, None) == devices.CPU_BATCH and devices.batch_size(extractor, 8) == 8
    samples = []

    def probe(forward, sample, device):  # the CUDA peak counter, faked: 40 MiB per photo
        samples.append(sample.shape)
        return 40 * 2**20

    monkeypatch.setattr(devices, "probe_bytes_per_item", probe)
    monkeypatch.setattr(devices, "free_memory", lambda device: 12 * 2**30)
    gpu = devices.Placement("cuda", "bfloat16")
    assert devices.batch_size(extractor, None, gpu) == 128  # 0.7 x 12 GiB / 40 MiB = 215 -> 128
    assert devices.batch_size(extractor, 64, gpu) == 64  # an explicit size that fits is kept
    assert devices.batch_size(extractor, 4096, gpu) == 128  # one that does not is lowered
    assert samples[0] == (8, 224, 224, 3)  # probed with the model's own input (uint8 pixels)


class FakeAllocator:
    """GPU memory as a real allocator holds it: a block is in use while any reference to it lives.

    `forward` allocates one block per photo and keeps them in its frame, as a model's activations
    are; when the memory is full it raises out-of-memory from inside that frame, so whatever holds
    the traceback also holds every block the failed call had taken.
    """

    def __init__(self, capacity: int):
        self.capacity, self.used, self.sizes = capacity, 0, []

    def block(self) -> object:
        if self.used >= self.capacity:
            raise torch.OutOfMemoryError("CUDA out of memory")
        self.used += 1
        block = type("Block", (), {})()
        weakref.finalize(block, self.free)
        return block

    def free(self) -> None:
        self.used -= 1

    def forward(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        activations = []  # a model's activations: locals of the frame the error is raised from
        for _ in batch:
            activations.append(self.block())
        return batch * 2


def test_out_of_memory_halves_the_batch_once_and_keeps_the_size_that_fits():
    memory = FakeAllocator(capacity=30)
    fitting = devices.FittingForward(memory.forward)
    first = np.arange(48, dtype=np.float32).reshape(48, 1)
    assert np.array_equal(fitting(first), first * 2)  # in order
    assert memory.sizes == [48, 24, 24]  # the failed call's memory is free before the retry
    second = np.arange(40, dtype=np.float32).reshape(40, 1)
    assert np.array_equal(fitting(second), second * 2)
    assert memory.sizes[3:] == [24, 16]  # later batches start at the size that worked
    assert memory.used == 0


def test_out_of_memory_with_a_single_photo_is_raised():
    fitting = devices.FittingForward(FakeAllocator(capacity=0).forward)
    with pytest.raises(torch.OutOfMemoryError):
        fitting(np.zeros((4, 1), np.float32))


def half_precision_cosines(precision: str, photos: int) -> np.ndarray:
    """The default model's vectors under `precision` autocast on the CPU against float32, per photo."""
    batch = to_array(demo_photos(photos), 224, (0.5,) * 3, (0.5,) * 3)
    full = create_extractor("efficientnet_lite0").embed_batch(batch)
    with devices.placed("cpu", precision):
        half_extractor = create_extractor("efficientnet_lite0")
    assert half_extractor.placement.precision == precision
    assert {p.dtype for p in half_extractor.model.parameters()} == {getattr(torch, precision)}  # loaded in it
    half = half_extractor.embed_batch(batch)
    assert np.abs(full - half).max() > 1e-6  # it really ran in half precision
    return (full * half).sum(axis=1)


def test_bfloat16_autocast_on_the_cpu_against_float32_on_real_photos(monkeypatch):
    monkeypatch.setenv("LOOKALIKE_BACKEND", "torch")
    cosine = half_precision_cosines("bfloat16", 24)
    assert cosine.mean() >= 0.999 and cosine.min() >= 0.995  # 8-bit mantissa: why the default uses float16


def test_the_defaults_gpu_precision_agrees_with_float32(monkeypatch):
    from core.methods import efficientnet

    monkeypatch.setenv("LOOKALIKE_BACKEND", "torch")
    assert efficientnet.HALF == "float16"
    assert half_precision_cosines("float16", 6).min() >= 0.999  # float16 on the CPU is slow: few photos


def test_device_flags_give_the_same_vectors_as_plain_embed(demo_catalog, db_path, tmp_path, no_gpu):
    import shutil

    from core.catalog.db import open_catalog

    demo_catalog.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copies = {flag: tmp_path / f"{flag}.db" for flag in ("cpu", "auto")}
    for path in copies.values():
        shutil.copy(db_path, path)
    embed_catalog(demo_catalog, "efficientnet_lite0", limit=64, progress=False)
    ids, plain = vectors.load_matrix(demo_catalog, "efficientnet_lite0")
    for flag, path in copies.items():
        assert main(["embed", "--db", str(path), "--device", flag, "--limit", "64", "--json"]) == 0
        db = open_catalog(path)
        flag_ids, matrix = vectors.load_matrix(db, "efficientnet_lite0")
        db.conn.close()
        assert flag_ids == ids and len(ids) == 64
        assert np.abs(matrix - plain).max() < 1e-6


def test_core_counts_respect_a_containers_cpu_quota(tmp_path, monkeypatch):
    from core import settings

    monkeypatch.setattr(settings.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert settings.available_cores(tmp_path) == 16  # no cgroup files: the affinity
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert settings.available_cores(tmp_path) == 16
    (tmp_path / "cpu.max").write_text("250000 100000\n")  # docker run --cpus 2.5
    assert settings.available_cores(tmp_path) == 3
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("400000\n")  # cgroup v1
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert settings.available_cores(tmp_path) == 4


def test_a_placed_block_changes_only_its_own_threads_device(monkeypatch, no_gpu):
    """The app runs each session's jobs inside `placed`: another session (thread) keeps its own pick."""
    import threading

    monkeypatch.setattr(devices, "cuda_available", lambda: True)
    monkeypatch.setattr(devices, "half_dtype", lambda device: "bfloat16")
    inside, other = threading.Event(), {}

    def elsewhere() -> None:
        inside.wait(5)
        other["placement"] = devices.current()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    with devices.placed("cpu", "float16"):
        inside.set()
        thread.join(5)
        assert devices.current() == devices.Placement("cpu", "float16")
    assert other["placement"] == devices.Placement("cuda", "bfloat16")  # the process's auto choice
    assert devices.current() == devices.Placement("cuda", "bfloat16")


def test_a_wsl2_gpu_is_not_ruled_out_before_torch_is_asked(monkeypatch):
    real_path = devices.Path
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(devices.sys, "platform", "linux")
    for present, ruled_out in (({"/dev/dxg"}, False), ({"/dev/nvidiactl"}, False), (set(), True)):
        monkeypatch.setattr(
            devices, "Path", lambda p, present=present: real_path("/") if p in present else real_path("/nonexistent/x")
        )
        assert devices._no_nvidia_driver() is ruled_out


def test_batches_go_to_a_gpu_through_pinned_memory_and_stay_in_place_on_the_cpu(monkeypatch):
    """A `non_blocking` copy from pageable memory blocks: to CUDA a batch is pinned first."""
    assert devices.pinned_copy("cuda") and devices.pinned_copy("cuda:1")
    assert not devices.pinned_copy("cpu") and not devices.pinned_copy("mps")
    batch = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    on_cpu = devices.to_device(batch, "cpu")
    assert np.array_equal(on_cpu.numpy(), batch) and np.shares_memory(on_cpu.numpy(), batch)  # no copy
    copies = []

    class Pinned:
        def to(self, device, non_blocking=False):
            copies.append((device, non_blocking))
            return "on the gpu"

    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda tensor: Pinned())  # no CUDA here to pin with
    assert devices.to_device(batch, "cuda:0") == "on the gpu" and copies == [("cuda:0", True)]
    assert devices.to_device(batch, "cpu") is not None and copies == [("cuda:0", True)]  # the CPU never pins


@pytest.mark.parametrize("device", ["tpu", "cuda"])
def test_a_device_that_is_not_here_breaks_only_what_needs_it(embedded_demo, tmp_path, device):
    env = {"LOOKALIKE_DEVICE": device, "CUDA_VISIBLE_DEVICES": ""}
    db = str(embedded_demo.path)
    listed = run_cli("methods", "--db", db, env=env)
    assert listed.returncode == 0 and f"LOOKALIKE_DEVICE={device}" in listed.stdout, listed.stderr
    with embedded_demo.conn:
        embedded_demo.conn.execute("DELETE FROM embeddings WHERE method = 'color_hist' AND item_id < '11'")
    done = run_cli("embed", "--method", "color_hist", "--db", db, env=env)
    assert done.returncode == 0 and "embedded" in done.stdout, done.stderr
    found = run_cli("search", "--item", "10129", "-k", "2", "--db", db, env=env)
    assert found.returncode == 0, found.stderr
    line = one_line(run_cli("search", "--image", str(DEMO / "images" / "10129.jpg"), "--db", db, env=env))
    assert f"LOOKALIKE_DEVICE={device}" in line and "--device" not in line
