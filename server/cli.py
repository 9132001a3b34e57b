"""``cocanvas serve`` and ``cocanvas token``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from .config import Settings

# -- what the embedded HTTP server tolerates from one connection ------------------------------
#
# uvicorn has no request-header timeout: its keep-alive timer only runs between requests, so a
# connection that sends half a request line (or nothing at all) is held for ever. These bounds
# are enforced per connection by the protocol wrapper below. Behind nginx they never trigger for
# honest traffic: nginx reads the whole header block (client_header_timeout, 60 s) and, for
# plain HTTP, buffers the whole body (client_body_timeout) before it opens the upstream request.
#
# A new connection, or a kept-alive one after its response, must complete its next request's
# headers within this many seconds (counted from its first byte once it sends one).
HEADER_TIMEOUT_S = 10.0
# ... and then deliver the request body within this many seconds (WebSocket upgrades have none).
BODY_TIMEOUT_S = 60.0
# A request whose header block grows past this many bytes is cut off.
MAX_HEADER_BYTES = 64 * 1024


# uvicorn logs request targets (access log; WebSocket accepts at debug): a token in the query
# string (?token=JWT, how browsers authenticate WebSockets) must not end up in log files.
_SECRET_QUERY = re.compile(r"((?:^|[?&])(?:token|access_token)=)[^&\s\"]+")


def redact(text: str) -> str:
    return _SECRET_QUERY.sub(r"\1[redacted]", text)


def _message(record: logging.LogRecord) -> str:
    msg = record.getMessage()
    return redact(msg) if record.name.startswith("uvicorn") else msg


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _message(record),
        }
        # uvicorn's access log: (client, method, path, http version, status).
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            if len(record.args) == 5:
                client, method, path, version, status = record.args
                path = redact(path) if isinstance(path, str) else path
                entry.update(client=client, method=method, path=path, http=version, status=status)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class PlainFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        if record.name.startswith("uvicorn"):
            record.message = redact(record.message)
        return super().formatMessage(record)


def _uvicorn_level(settings: Settings) -> str:
    # uvicorn's "info" is one line per request and per startup step: shown from debug on.
    level = settings.log_level.lower()
    return "warning" if level == "info" else level


def log_config(settings: Settings) -> dict[str, Any]:
    """One handler on the root logger, in our format; uvicorn's loggers only propagate to it.

    Handed to uvicorn as ``log_config``: without it uvicorn installs its own handlers and
    formatters, and its lines (errors, access log) come out as plain text even in JSON mode.
    """
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if settings.log_json else {"()": PlainFormatter, "fmt": PLAIN_FORMAT}
    )
    uvicorn_level = _uvicorn_level(settings).upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # uvicorn writes use_colors into these two when asked to; both name our formatter.
        "formatters": {"default": formatter, "access": dict(formatter)},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": settings.log_level.upper()},
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": uvicorn_level}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
        },
    }


def setup_logging(settings: Settings) -> None:
    import logging.config

    logging.config.dictConfig(log_config(settings))
    if settings.log_json:
        # Whatever would reach stderr without a logger goes through one, so every line is JSON.
        logging.captureWarnings(True)
        crash = logging.getLogger("cocanvas.crash")

        def excepthook(
            kind: type[BaseException], exc: BaseException, tb: TracebackType | None
        ) -> None:
            crash.critical("uncaught exception", exc_info=(kind, exc, tb))

        def thread_excepthook(args: threading.ExceptHookArgs) -> None:
            if args.exc_type is SystemExit:
                return
            name = args.thread.name if args.thread is not None else "?"
            value = args.exc_value if args.exc_value is not None else RuntimeError(args.exc_type)
            crash.critical(
                "uncaught exception in thread %s",
                name,
                exc_info=(args.exc_type, value, args.exc_traceback),
            )

        sys.excepthook = excepthook
        threading.excepthook = thread_excepthook


# -- request deadlines for the embedded server -------------------------------------------------


class _RequestDeadlines:
    """Mixed into uvicorn's HTTP protocol classes: header and body deadlines per connection.

    Relies only on what both of uvicorn's HTTP implementations have: ``transport``, ``loop``,
    ``cycle`` (the current request, created once its headers are complete) and the
    ``connection_made`` / ``data_received`` / ``on_response_complete`` / ``connection_lost``
    hooks. A connection upgraded to a WebSocket belongs to the WebSocket protocol from then on
    and is never touched again.
    """

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any

    _IDLE, _HEADERS, _BODY, _APP, _DONE = range(5)

    def _deadline_init(self) -> None:
        self._phase = self._IDLE
        self._mark: Any = None  # the request current when we started waiting for the next
        self._header_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _upgraded(self) -> bool:
        get = getattr(self.transport, "get_protocol", None)
        return get is not None and get() is not self

    def _waiting_for_headers(self) -> bool:
        cycle = self.cycle
        return cycle is self._mark and (cycle is None or cycle.response_complete)

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self._upgraded():
            return
        if self._phase in (self._IDLE, self._HEADERS):
            if self._waiting_for_headers():
                self.transport.close()  # slow or absent request headers
            return
        if self._phase == self._BODY:
            cycle = self.cycle
            if cycle is not None and cycle.more_body and not cycle.response_complete:
                self.transport.close()  # body trickling in
            self._phase = self._APP

    def _after_data(self, data: bytes) -> None:
        if self._upgraded():
            self._disarm()
            self._phase = self._DONE
            return
        if self._phase == self._HEADERS:
            if self._waiting_for_headers():
                self._header_bytes += len(data)
                if self._header_bytes > MAX_HEADER_BYTES:
                    self._disarm()
                    self.transport.close()
                return
            self._phase = self._BODY
            self._arm(BODY_TIMEOUT_S)
        if self._phase == self._BODY:
            cycle = self.cycle
            if cycle is None or not cycle.more_body:
                self._disarm()  # the whole request is in: its handling is the app's business
                self._phase = self._APP

    # -- the protocol hooks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._deadline_init()
        self._arm(HEADER_TIMEOUT_S)

    def data_received(self, data: bytes) -> None:
        if self._phase == self._IDLE:
            self._phase = self._HEADERS  # the clock restarts at the request's first byte
            self._header_bytes = 0
            self._arm(HEADER_TIMEOUT_S)
        super().data_received(data)  # type: ignore[misc]
        if self._phase != self._DONE:
            self._after_data(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self.transport.is_closing() or self._phase == self._DONE:
            return
        self._phase = self._IDLE
        self._mark = self.cycle
        self._arm(HEADER_TIMEOUT_S)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._phase = self._DONE
        super().connection_lost(exc)  # type: ignore[misc]


def http_protocol(impl: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with deadlines: httptools if installed (``auto``), else h11."""
    if impl in ("auto", "httptools"):
        try:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        except ImportError:
            if impl == "httptools":
                raise
        else:

            class HttpTools(_RequestDeadlines, HttpToolsProtocol):
                pass

            return HttpTools
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class H11(_RequestDeadlines, H11Protocol):
        pass

    return H11


def serve(settings: Settings) -> None:
    import uvicorn

    from .app import create_app
    from .uvicorn_ws import ws_protocol

    setup_logging(settings)
    from . import native

    # Pure is correct, only slower (about 15 % more CPU per update): say so where operators look.
    log = logging.getLogger("cocanvas")
    (log.info if native.status == "compiled" else log.warning)(
        "update reader and validator: %s", native.status
    )
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
        http=http_protocol(),
        ws=ws_protocol(),
        ws_max_size=settings.max_message_bytes + 1,
        ws_per_message_deflate=False,
        log_config=log_config(settings),
        log_level=_uvicorn_level(settings),
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
