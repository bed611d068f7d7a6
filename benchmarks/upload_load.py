"""Large photo uploads beside cheap item queries: `python -m core serve` on the demo catalog.

    python benchmarks/upload_load.py --db data/demo.db [--uploads 4] [--side 6320] [--root .]

Starts the server (the code under `--root`, so an older checkout can be measured the same way) on a
free loopback port, times `GET /items/10129/similar?k=10` alone (20 requests), then again while
`--uploads` clients each post one `--side` x `--side` PNG (a plain colour: tens of KB that decode to
`--side`² pixels) to `/search/image`, and prints a table: the item query's median and worst time in
each phase, the uploads' time and the server's peak memory (VmHWM). Each phase is bounded.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from PIL import Image

from common import ROOT, machine

ITEM = "10129"


def png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 40)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(base: str, photo: bytes) -> float:
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="p.png"\r\n\r\n' + photo + b"\r\n--b--\r\n"
    request = urllib.request.Request(
        f"{base}/search/image?k=10", body, {"content-type": "multipart/form-data; boundary=b"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as reply:
        reply.read()
    return time.perf_counter() - started


def similar(base: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(f"{base}/items/{ITEM}/similar?k=10", timeout=300) as reply:
        reply.read()
    return time.perf_counter() - started


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "demo.db")
    parser.add_argument("--uploads", type=int, default=4)
    parser.add_argument("--side", type=int, default=6320)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose server is measured")
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "core", "serve", "--db", str(args.db.resolve()), "--port", str(port)],
        cwd=args.root,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                similar(base)
                break
            except OSError:
                time.sleep(0.1)
        post(base, png(64))  # loads the model
        quiet = [similar(base) for _ in range(20)]
        photo = png(args.side)
        times: list[float] = []
        threads = [threading.Thread(target=lambda: times.append(post(base, photo))) for _ in range(args.uploads)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        busy = []
        while any(t.is_alive() for t in threads):
            busy.append(similar(base))
        for thread in threads:
            thread.join()
        uploads_s = time.perf_counter() - started
        peak = peak_mib(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    print(f"{machine()}; {args.uploads} uploads of a {args.side}x{args.side} PNG ({len(photo) // 1024} KB)")
    print(f"{'phase':24} {'item query median':>18} {'worst':>8} {'uploads done':>13} {'server peak':>12}")
    print(f"{'quiet':24} {statistics.median(quiet) * 1000:15.0f} ms {max(quiet) * 1000:5.0f} ms {'':>13} {'':>12}")
    print(
        f"{'during uploads':24} {statistics.median(busy) * 1000:15.0f} ms {max(busy) * 1000:5.0f} ms "
        f"{uploads_s:11.1f} s {peak:9.0f} MiB"
    )


if __name__ == "__main__":
    main()
