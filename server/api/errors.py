"""HTTP errors, one shape each, and the documentation that says which route answers which.

* Every error body is ``{"detail": "a sentence"}`` (:class:`ErrorOut`), except **422**, which is
  always ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`` (:class:`ValidationErrorOut`):
  a body that is not JSON, JSON nested too deep, a field out of range and a field that names
  something the canvas does not have all say which field and why, the same way.
* **413** before a byte of an oversized body is read when ``Content-Length`` says so, and as soon
  as a chunked body goes past the limit otherwise (:class:`BodyLimit`).
* Each route declares the statuses it can answer with ``responses=`` built from the pieces here
  (:func:`declare`), so the OpenAPI document lists every status a client can see.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

# -- request bodies and the two error shapes -------------------------------------------------


class StrictIn(BaseModel):
    """A request body: each field takes the JSON type its schema says, nothing coerced into it
    (``"60"`` is not 60, ``0`` is not ``false``), so what the OpenAPI document refuses is refused."""

    model_config = ConfigDict(strict=True)


def integral(value: Any) -> Any:
    """For a ``mode="before"`` validator of an integer field of a :class:`StrictIn`: JSON
    Schema's "integer" includes 759.0, which strict mode alone refuses ("759", 759.5 and true
    stay refused)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class ErrorOut(BaseModel):
    """Every error but 422: why, in a sentence."""

    detail: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """422: which part of the request (``loc``, e.g. ``["body", "org_id"]``), and why."""

    detail: list[FieldError]


def invalid(loc: Iterable[str | int], msg: str, type_: str = "value_error") -> NoReturn:
    """Raise a 422 for one field, in the same shape as FastAPI's own validation errors."""
    raise RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": type_}])


def _field_errors(errors: Iterable[Any]) -> list[dict[str, Any]]:
    # Only loc, msg and type: the rejected input is not echoed back (it may be a megabyte, or
    # nested deeper than the encoder recurses), and ``ctx`` holds exception objects.
    out = []
    for e in errors:
        msg = str(e.get("msg", ""))
        reason = (e.get("ctx") or {}).get("error")
        if e.get("type") == "json_invalid" and isinstance(reason, str):
            msg = f"{msg}: {reason}"  # e.g. "JSON decode error: depth limit exceeded"
        out.append({"loc": list(e.get("loc", ())), "msg": msg, "type": str(e.get("type"))})
    return out


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _field_errors(exc.errors())}, status_code=422)


_UNPARSABLE = "There was an error parsing the body"  # FastAPI's 400 for a body it cannot read


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    status, detail = exc.status_code, exc.detail
    body: Any = detail
    if status == 405:
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
    if status == 400 and detail == _UNPARSABLE:
        return JSONResponse(
            {
                "detail": [
                    {"loc": ["body"], "msg": "body is not valid JSON", "type": "json_invalid"}
                ]
            },
            status_code=422,
        )
    if status == 422 and not isinstance(detail, list):
        body = [{"loc": ["body"], "msg": str(detail), "type": "value_error"}]
    if status == 204 or status == 304 or status < 200:
        return Response(status_code=status, headers=headers)
    return JSONResponse({"detail": body}, status_code=status, headers=headers)


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route serves at this path (Starlette's 405 names one route's only)."""
    return [
        method
        for method in METHODS
        if any(r.matches({**scope, "method": method})[0] is Match.FULL for r in app.router.routes)
    ]


# -- parsing JSON bodies ----------------------------------------------------------------------


MAX_BODY_KEY = "cocanvas.max_body_bytes"  # in the scope, set by BodyLimit
MAX_BODY_DETAIL = "request body larger than {limit} bytes"


def _too_large(limit: int) -> StarletteHTTPException:
    # Connection: close, so a client still sending is cut off rather than drained.
    return StarletteHTTPException(
        413, MAX_BODY_DETAIL.format(limit=limit), headers={"Connection": "close"}
    )


class _APIRequest(Request):
    """A request whose body is read up to the limit and parsed with orjson.

    * ``body()`` stops reading and answers 413 as soon as a body without ``Content-Length``
      (chunked) passes the limit (:class:`BodyLimit` answered one with ``Content-Length``).
    * ``json()``: nesting past 1024 levels or invalid UTF-8 is a ``JSONDecodeError``, so
      FastAPI answers 422 (``json.loads`` raises ``RecursionError`` or ``UnicodeDecodeError``,
      which FastAPI answers with 400).
    """

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            limit: int | None = self.scope.get(MAX_BODY_KEY)
            chunks: list[bytes] = []
            size = 0
            async for chunk in self.stream():
                size += len(chunk)
                if limit is not None and size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """The route class of every API router (``APIRouter(route_class=JSONRoute)``)."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_APIRequest(request.scope, request.receive))

        return route


# -- body size --------------------------------------------------------------------------------


class BodyLimit:
    """413 for a request body above ``max_bytes``.

    With a ``Content-Length`` above it: at once, before a byte of the body is read. Without one
    (chunked): the limit goes into the scope, and the routes' request (:class:`_APIRequest`)
    stops reading when the body passes it. Raising from ``receive`` instead would surface
    inside the flood guard's task group as an exception group, not as the 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length":
                    try:
                        declared = int(value)
                    except ValueError:
                        declared = -1
                    if declared > self.max_bytes:
                        exc = _too_large(self.max_bytes)
                        response = JSONResponse(
                            {"detail": exc.detail}, status_code=413, headers=exc.headers
                        )
                        await response(scope, receive, send)
                        return
            scope[MAX_BODY_KEY] = self.max_bytes
        await self.app(scope, receive, send)


# -- declaring what each route answers --------------------------------------------------------

_ERROR = {"model": ErrorOut}

UNAUTHORIZED = {
    401: {**_ERROR, "description": "no, malformed, forged or expired token"},
}
OPERATOR = {
    401: {
        **_ERROR,
        "description": "operator key missing or wrong (only when COCANVAS_ADMIN_TOKEN is set)",
    },
}
PARTICIPANT = {
    **UNAUTHORIZED,
    403: {**_ERROR, "description": "token for another canvas"},
    410: {**_ERROR, "description": "the token came from an invite link since revoked"},
}
FACILITATOR = {
    **PARTICIPANT,
    403: {**_ERROR, "description": "token for another canvas, or a role that may not do this"},
}
NO_CANVAS = {404: {**_ERROR, "description": "no such canvas"}}
VALIDATION = {
    422: {
        "model": ValidationErrorOut,
        "description": "invalid request: `detail` lists each field refused (`loc`) and why",
    }
}
BODY = {
    **VALIDATION,
    413: {**_ERROR, "description": "request body above COCANVAS_MAX_BODY_BYTES (default 1 MiB)"},
}
RATE_LIMITED = {
    429: {**_ERROR, "description": "too many requests from this address; retry after a second"}
}


def declare(*parts: dict[int, dict[str, Any]], **overrides: str) -> dict[int | str, Any]:
    """``responses=`` for a route: the union of ``parts``; ``overrides`` reword a description
    (``declare(BODY, s422="...")``)."""
    out: dict[int | str, Any] = {}
    for part in parts:
        for status, spec in part.items():
            out[status] = dict(spec)
    for key, description in overrides.items():
        status = int(key.removeprefix("s"))
        out[status] = {**out[status], "description": description}
    return out


# -- installing -------------------------------------------------------------------------------


def install(app: FastAPI, max_body_bytes: int) -> None:
    """The error handlers and the body limit (outermost, so it runs before anything reads)."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
