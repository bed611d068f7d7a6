"""The user-wide model cache's entries: recorded digests, replacement, leftovers of dead processes
(the OpenVINO side, with real models, is in test_openvino.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from core.methods import model_cache


def write(xml) -> None:
    xml.write_text("<net/>")
    xml.with_suffix(".bin").write_bytes(b"weights")


def test_an_entry_is_checked_against_its_digests_and_replaced_whole(tmp_path):
    entry = model_cache.Entry(tmp_path / "m-123" / "abc")
    with entry.locked():
        entry.build(write)
    assert entry.record() is not None
    (entry.folder / "model.bin").write_bytes(b"weightz")
    assert entry.record() is None  # a changed byte: not trusted
    with entry.locked():
        entry.build(write)
    assert entry.record() is not None and sorted(p.name for p in entry.folder.parent.iterdir()) == ["abc", "abc.lock"]


def test_staging_folders_of_dead_processes_are_cleared_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    entry = model_cache.Entry(tmp_path / "m-123" / "abc")
    left = entry.folder.with_name(f"abc.staging-{dead.stdout.strip()}-0a1b2c3d")
    live = entry.folder.with_name(f"abc.staging-{os.getpid()}-0a1b2c3d")
    for folder in (left, live):
        folder.mkdir(parents=True)
    with entry.locked():
        entry.build(write)
    assert not left.exists() and live.exists()
