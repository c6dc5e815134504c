"""Every answer that is not a success, in one shape: `{"error": {"code", "message", ...}}`.

The exception handlers turn each package's `Refusal`, FastAPI's validation errors and the
framework's own answers (unknown route, wrong method) into that shape; anything unexpected is a
500 whose details go to the log only. `ERRORS` documents the shape in the OpenAPI schema
(Schemathesis checks that nothing else comes back).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from refusals import Refusal
from serve_app.active_models import NoActiveModel
from serve_app.schemas import ErrorResponse

log = logging.getLogger("serve_app.requests")

# bad input, no session, not found, body too large, invalid, quota or rate limit, overloaded or a dependency down
ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse}
                                           for status in (400, 401, 404, 413, 422, 429, 503)}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorResponse}}
FORBIDDEN: dict[int | str, dict[str, Any]] = {403: {"model": ErrorResponse}}  # allowed to no one, or not yet
UPSTREAM: dict[int | str, dict[str, Any]] = {502: {"model": ErrorResponse}}  # a provider (Stripe) did not answer
FRAMEWORK_CODES = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message}, **{k: v for k, v in (extra or {}).items() if v is not None}}
    return JSONResponse(body, status_code=status, headers=headers)


async def refused(_: Request, exc: Exception) -> JSONResponse:
    """Every package's refusals (accounts, billing, portfolio, predictions) in one shape."""
    assert isinstance(exc, Refusal)
    return error_response(exc.status, exc.code, exc.message, exc.headers, exc.extra)


async def invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        problems.append(f"{where}: {err.get('msg')}")
    malformed = any(err.get("type") == "json_invalid" for err in exc.errors())
    return error_response(400 if malformed else 422, "malformed_json" if malformed else "invalid_request",
                          "; ".join(problems) or "invalid request")


async def framework_error(request: Request, exc: Exception) -> JSONResponse:
    """What the framework answers itself (unknown route, wrong method, unparsable body), in our shape."""
    assert isinstance(exc, StarletteHTTPException)
    code = FRAMEWORK_CODES.get(exc.status_code, f"http_{exc.status_code}")
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}; the API is described at /docs"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; allowed: {(exc.headers or {}).get('Allow', '')}"
    elif exc.status_code == 400:
        message = "the request body could not be read as JSON (UTF-8 text, nested at most a few hundred levels)"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


async def no_model(_: Request, exc: Exception) -> JSONResponse:
    return error_response(503, "no_model", str(exc))


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "server_error", "Server error. Please try again.")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Refusal, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, framework_error)
    app.add_exception_handler(NoActiveModel, no_model)
    app.add_exception_handler(Exception, unexpected)
