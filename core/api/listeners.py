"""A listening socket of its own for each of the API's worker processes, so the kernel shares out connections.

uvicorn's `--workers` binds one socket in its parent process and hands it to every worker. They then
race to accept on it, and the worker that wakes first takes every connection waiting (asyncio accepts
in a batch): 16 keep-alive clients arriving together all land on one worker while the other idles,
and every request waits behind that one core (docs/benchmarks.md, the live catalog's API load). On
Linux, sockets bound to one port with SO_REUSEPORT each get their own queue, and the kernel hashes
every new connection to one of them.

`ReusePortListener` is the socket that the parent binds and passes to uvicorn's supervisor, which
sends it to each worker it starts or restarts by pickling it. Unpickled in a worker, it becomes a new
socket bound to the same address with SO_REUSEPORT, the worker's own. The parent's own socket never
listens; it only keeps the port taken between workers. uvicorn's supervisor (liveness pings,
restarts, SIGHUP) is kept as it is.
"""

from __future__ import annotations

import socket
import sys

BALANCED = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")  # the kernel balances only on Linux


class ReusePortListener(socket.socket):
    """A TCP socket bound with SO_REUSEPORT; a pickled copy is a new socket bound to the same address."""

    def __reduce__(self):  # a worker gets its own socket, not a shared descriptor
        return bind_reuse_port, (self.family, self.getsockname()[:2])


def bind_reuse_port(family: int, address: tuple[str, int]) -> ReusePortListener:
    """A TCP socket bound to `address` with SO_REUSEADDR and SO_REUSEPORT, not yet listening (port 0: any free one).
    IPPROTO_TCP named, so accepted connections get TCP_NODELAY from asyncio."""
    sock = ReusePortListener(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
