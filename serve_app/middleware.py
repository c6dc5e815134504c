"""ASGI middleware around every route: a body-size limit, load shedding, the security headers,
and one structured log line and the metrics of each request."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve_app.errors import FRAMEWORK_CODES, error_response
from serve_app.stopping import RETRY_AFTER_S, InFlight

log = logging.getLogger("serve_app.requests")

MAX_BODY_BYTES = 64 * 1024  # the largest body any route takes is a few hundred bytes (a Stripe event: a few kB)
# requests one app answers at once, the rest a 503 `overloaded` at once: twice the hundred users one
# replica serves, since after a node loss the surviving ingress carries the other's callers too
MAX_IN_FLIGHT = 200


# The page loads its scripts, styles and chart library from this origin only and opens sockets
# to it; nothing may frame it (the account panel), no plugin runs, no form posts elsewhere. Inline
# styles are allowed (the chart library sets style attributes on the elements it makes; a style
# runs no code), inline and evaluated scripts are not.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")
HSTS_MAX_AGE_S = 365 * 24 * 3600


def security_headers(https: bool) -> list[tuple[bytes, bytes]]:
    """Every answer's: CSP, no framing, no content sniffing, the origin alone as referrer; HSTS
    where the service is public on https (`PUBLIC_BASE_URL`)."""
    headers = [(b"content-security-policy", CONTENT_SECURITY_POLICY.encode()), (b"x-frame-options", b"DENY"),
               (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"strict-origin-when-cross-origin")]
    if https:
        headers.append((b"strict-transport-security", f"max-age={HSTS_MAX_AGE_S}; includeSubDomains".encode()))
    return headers


class SecurityHeaders:
    """`security_headers` on every HTTP answer (errors and static files included)."""

    def __init__(self, app: Any, https: bool = False) -> None:
        self.app, self.headers = app, security_headers(https)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in self.headers if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """A body over `max_bytes` is a 413 before anything parses it, whether the client declares
    its length or streams it in chunks."""

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            status, message = ((413, f"the request body is larger than {self.max_bytes // 1024} kB")
                               if declared.isdigit() else (400, "the Content-Length header is not a number"))
            await error_response(status, FRAMEWORK_CODES[status], message)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise StarletteHTTPException(413, f"the request body is larger than {self.max_bytes // 1024} kB")
            return message

        await self.app(scope, limited, send)


class Shed:
    """Past `limit` requests in flight, answer 503 `overloaded` + Retry-After at once, so that a
    burst is told to come back instead of queueing without bound; while the service stops
    (`stopping()`, `serve_app.stopping`), every new request is a 503 `stopping` + Retry-After and
    the ones in flight finish."""

    def __init__(self, app: Any, limit: int = MAX_IN_FLIGHT, stopping: Callable[[], bool] = lambda: False,
                 in_flight: InFlight | None = None) -> None:
        self.app, self.limit, self.stopping = app, limit, stopping
        self.in_flight = in_flight or InFlight()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.stopping():
            await error_response(503, "stopping", "the service is restarting; please retry shortly",
                                 {"Retry-After": str(RETRY_AFTER_S), "Connection": "close"})(scope, receive, send)
            return
        if self.in_flight.count >= self.limit:
            await error_response(503, "overloaded", "the service is busy; please retry in a second",
                                 {"Retry-After": "1"})(scope, receive, send)
            return
        self.in_flight.count += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight.count -= 1


async def observe(request: Request, call_next: Any) -> Any:
    """One JSON log line and the metrics of each request, by route template."""
    started = time.perf_counter()
    response = await call_next(request)
    ms = (time.perf_counter() - started) * 1000
    route = getattr(request.scope.get("route"), "path", None) or "(no route)"
    request.app.state.metrics.request(route, response.status_code, ms)
    log.info(json.dumps({"method": request.method, "path": request.url.path, "status": response.status_code,
                         "ms": round(ms, 1)}))
    return response
