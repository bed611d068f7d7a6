"""`serve --workers N`: each worker its own listener on the port, so the kernel shares connections out
among them (core/api/listeners.py), also after a worker is replaced; a port already taken is one line."""

from __future__ import annotations

import http.client
import os
import pickle
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from core.api.listeners import BALANCED, bind_reuse_port

from helpers import ROOT, free_port, run_cli

pytestmark = pytest.mark.skipif(not BALANCED, reason="the kernel shares connections out this way on Linux only")
CONNECTIONS = 32


def test_a_listener_sent_to_a_worker_is_a_socket_of_its_own_on_the_same_port():
    first = bind_reuse_port(socket.AF_INET, ("127.0.0.1", 0))
    copy = pickle.loads(pickle.dumps(first))  # what uvicorn's supervisor does for each worker it starts
    try:
        assert copy.getsockname() == first.getsockname() and copy.fileno() != first.fileno()
        assert copy.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert copy.proto == socket.IPPROTO_TCP  # accepted connections get TCP_NODELAY
    finally:
        copy.close()
        first.close()


def _listening_workers(server: subprocess.Popen, port: int, workers: int, timeout: float = 120) -> list[int]:
    """The worker processes' ids once `workers` of them listen on `port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server stopped"
        found = []
        for child in psutil.Process(server.pid).children():
            try:
                if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in child.net_connections("tcp")):
                    found.append(child.pid)
            except psutil.NoSuchProcess:
                continue
        if len(found) == workers:
            return sorted(found)
        time.sleep(0.2)
    raise AssertionError(f"{workers} workers did not listen on port {port}")


def _connections_per_worker(workers: list[int], port: int) -> dict[int, int]:
    """Open CONNECTIONS keep-alive connections at once, one request on each, and count which worker holds each."""
    opened = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(CONNECTIONS)]
    try:
        for conn in opened:
            conn.connect()
        for conn in opened:
            conn.request("GET", "/healthz")
            conn.getresponse().read()
        return {
            pid: sum(
                c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
                for c in psutil.Process(pid).net_connections("tcp")
            )
            for pid in workers
        }
    finally:
        for conn in opened:
            conn.close()


def test_two_workers_share_the_connections_also_after_one_is_replaced(embedded_demo):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "core", "serve", "--db", str(embedded_demo.path), "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env={**os.environ, "LOOKALIKE_API_KEY": "k3y"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        workers = _listening_workers(server, port, 2)
        held = _connections_per_worker(workers, port)
        assert sum(held.values()) == CONNECTIONS and min(held.values()) >= 4, held  # one took all, before
        os.kill(workers[0], signal.SIGKILL)  # uvicorn's supervisor starts another, with a listener of its own
        deadline = time.monotonic() + 120
        while workers[0] in (now := _listening_workers(server, port, 2)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers[0] not in now and workers[1] in now
        held = _connections_per_worker(now, port)
        assert sum(held.values()) == CONNECTIONS and min(held.values()) >= 4, held
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_port_already_taken_is_one_line(embedded_demo):
    with socket.socket() as taken:  # another program's listener, without SO_REUSEPORT
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("serve", "--db", str(embedded_demo.path), "--port", str(port), "--workers", "2")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "in use" in done.stderr
