"""``cocanvas serve`` and ``cocanvas token``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from .config import Settings


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def serve(settings: Settings) -> None:
    import uvicorn

    from .app import create_app

    setup_logging(settings)
    # The store's writer thread must get the GIL as soon as its fsync returns; the default 5 ms
    # switch interval would add up to 5 ms to every broadcast behind a busy event loop.
    sys.setswitchinterval(0.0002)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop=loop,
        ws="websockets-sansio",
        ws_max_size=settings.max_message_bytes + 1,
        ws_per_message_deflate=False,
        log_level=settings.log_level.lower() if settings.log_level.lower() != "info" else "warning",
        timeout_graceful_shutdown=10,
        backlog=4096,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="cocanvas", description="CoCanvas collaborative canvas server"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the server")
    p_serve.add_argument("--host")
    p_serve.add_argument("--port", type=int)
    p_serve.add_argument("--data-dir", type=Path)
    p_token = sub.add_parser("token", help="issue a token for a canvas (operator use)")
    p_token.add_argument("canvas_id")
    p_token.add_argument(
        "--role", default="facilitator", choices=["facilitator", "editor", "viewer"]
    )
    p_token.add_argument("--name", default="Operator")
    p_token.add_argument("--org", default="")
    p_token.add_argument("--ttl", type=float, default=3600.0, help="seconds")
    p_token.add_argument("--data-dir", type=Path)
    args = parser.parse_args(argv)

    overrides = {
        k: v for k, v in vars(args).items() if k in ("host", "port", "data_dir") and v is not None
    }
    settings = Settings(**overrides)
    if args.command == "serve":
        serve(settings)
    elif args.command == "token":
        from .auth import Tokens, load_or_create_secret, new_user_id
        from .session import Identity

        tokens = Tokens(load_or_create_secret(settings.secret, settings.data_dir))
        identity = Identity(new_user_id(), args.name, args.org, args.role)
        print(tokens.issue(args.canvas_id, identity, args.ttl, now=time.time()))


if __name__ == "__main__":
    main()
