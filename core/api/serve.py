"""`python -m core serve`: the API on uvicorn, on loopback unless told otherwise, never open without a key."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.api.keys import load_keys
from core.api.listeners import BALANCED, bind_reuse_port
from core.catalog.db import open_catalog
from core.settings import reload, settings
from core.team.proxy import is_loopback

# How long a worker process may take to answer uvicorn's liveness ping before it is killed and
# replaced (uvicorn's default, 5 s, kills busy workers of a loaded machine, failing their requests).
WORKER_HEALTHCHECK_S = 60

if TYPE_CHECKING:
    import uvicorn


class ServeError(ValueError):
    """A server that must not start, in one line."""


def check_bind(host: str, keys: tuple[str, ...]) -> None:
    """Refuse to listen beyond this machine without a key."""
    if not keys and not is_loopback(host):
        raise ServeError(
            f"refusing to serve on {host} without an API key: set LOOKALIKE_API_KEY (or "
            "LOOKALIKE_API_KEYS_FILE), or keep the default --host 127.0.0.1"
        )


def one_blas_thread() -> None:
    """One BLAS thread per server process: requests run side by side, each on one core. A matrix
    product that spreads over every core per request is ten times slower under concurrent load."""
    from threadpoolctl import threadpool_limits

    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # NumPy's BLAS; models keep LOOKALIKE_THREADS
        os.environ[name] = "1"  # worker processes (--workers) start with it
    threadpool_limits(1, user_api="blas")  # this process: NumPy is already loaded


def banner(db: Path, items: int, host: str, port: int, keys: tuple[str, ...]) -> list[str]:
    """What a starting server says: where it listens, which catalog and how many items, whether keys
    are required, where the docs are."""
    base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    asked = (
        f"required ({len(keys)} key{'' if len(keys) == 1 else 's'}: send Authorization: Bearer KEY)"
        if keys
        else "none required (set LOOKALIKE_API_KEY to require one; needed to listen beyond this machine)"
    )
    return [
        f"Lookalike API listening on {base} (Ctrl+C stops it)",
        f"catalog: {Path(db).resolve()}, {items:,} item{'' if items == 1 else 's'}",
        f"API keys: {asked}",
        f"docs: {base}/docs",
    ]


def serve(
    db: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "info",
    announce: Callable[[list[str]], None] | None = None,
) -> None:
    """Check the keys, the address and the catalog, hand `announce` the banner, then serve until stopped (Ctrl+C)."""
    import uvicorn

    keys = load_keys()
    check_bind(host, keys)
    settings().api_photos  # noqa: B018 - a bad LOOKALIKE_API_PHOTOS is one line, before binding
    opened = open_catalog(db, read_only=True)  # a missing or unreadable catalog: one line, before binding
    items = opened.execute("SELECT count(*) FROM items").fetchone()[0]
    opened.conn.close()
    if announce is not None:
        announce(banner(db, items, host, port, keys))
    os.environ["LOOKALIKE_DB"] = str(Path(db).resolve())  # the app (in each worker process) is built from it
    reload()
    one_blas_thread()
    options: dict[str, Any] = dict(
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=True,  # X-Forwarded-For/-Proto from a reverse proxy on this machine (docs/api.md)
        server_header=False,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )
    if workers > 1 and BALANCED:
        _run_balanced(uvicorn.Config("core.api.app:create_app", **options))
    else:
        uvicorn.run("core.api.app:create_app", **options)


def _run_balanced(config: uvicorn.Config) -> None:
    """uvicorn's supervisor of `config.workers` processes, each with its own listener (core/api/listeners.py)."""
    from uvicorn.supervisors import Multiprocess

    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    try:
        listener = bind_reuse_port(family, (config.host, config.port))
    except OSError as exc:
        raise ServeError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    try:
        Multiprocess(config, sockets=[listener]).run()
    finally:
        listener.close()
