"""Atomic writes (core/files/atomic.py): dead writers' leftovers cleared, links to devices or FIFOs refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_temporary_files_of_dead_writers_are_cleared(tmp_path):
    from core.files.atomic import atomic_text_writer

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    target = tmp_path / "m.ann"
    left = tmp_path / f".m.ann.{dead}.x1y2.part"  # what a kill -9 during save leaves
    live = tmp_path / f".m.ann.{os.getpid()}.abcd.part"  # a writer still at work
    left.write_bytes(b"\0" * 1024)
    live.write_bytes(b"\0" * 1024)
    with atomic_text_writer(target) as handle:
        handle.write("done")
    assert target.read_text() == "done"
    assert not left.exists() and live.exists()


def test_a_link_to_a_device_or_fifo_is_refused(tmp_path):
    from core.files.atomic import atomic_text_writer

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for device in (Path("/dev/null"), fifo):
        link = tmp_path / f"to-{device.name}"
        link.symlink_to(device)
        with pytest.raises(OSError, match="not a regular file"):
            with atomic_text_writer(link) as handle:
                handle.write("x")
        assert link.is_symlink() and not device.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "to-fifo", "to-null"]
