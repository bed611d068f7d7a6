"""The serve command: the JSON API (core/api) on uvicorn."""

from __future__ import annotations

import argparse

from core.cli.common import count, workers


def cmd_serve(args: argparse.Namespace) -> int:
    from core.api.serve import serve  # the web libraries load only for this command

    serve(
        args.db,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info" if args.verbose else "warning",
        announce=lambda lines: print("\n".join(lines), flush=True),
    )
    return 0


def port(text: str) -> int:
    """argparse type: a TCP port, 1 to 65535."""
    value = count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"needs a port from 1 to 65535, got {value}")
    return value


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="the JSON API for a shop's site (docs/api.md)",
        description="Serve look-alikes as JSON over HTTP (by item, photo or text) until Ctrl+C; docs at /docs.",
        epilog="API keys: set LOOKALIKE_API_KEY (one key) or LOOKALIKE_API_KEYS_FILE (a file of keys, one a line); "
        "clients then send Authorization: Bearer KEY. Without a key the server listens on loopback only.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others need a key)")
    p.add_argument("--port", type=port, default=8000, help="TCP port to listen on (default 8000)")
    p.add_argument("--workers", type=workers, default=1, help="server processes (default 1)")
    p.set_defaults(func=cmd_serve)
