"""The HTTP API (FastAPI): routes, error bodies and one structured log line per request.

The same app runs behind Ray Serve's ingress (`serve_app.deployments`) and, for tests and the
benchmark's baseline, on its own (`create_app(service, accounts)`). Routes find the prediction
service on `app.state.service` and the account service on `app.state.accounts`.

A request is signed in by `Authorization: Bearer <token>` or the `session` cookie; without
either it is anonymous, counted per client address. Forecast calls (`generate`, `/ml/predict`)
are charged to the caller's daily quota before they run and given back if they fail.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from accounts.errors import AccountError
from accounts.service import Account, AccountService, Caller
from billing.errors import billing_disabled
from billing.service import BillingService
from config import load_settings
from portfolio.service import Portfolio
from refusals import Refusal
from serve_app.active_models import NoActiveModel
from serve_app.metrics import Metrics
from serve_app.schemas import (
    PRINTABLE_PATTERN,
    TICKER_PATTERN,
    AccuracyResponse,
    AlertCreate,
    AlertLogsResponse,
    AlertOut,
    AlertsResponse,
    AlertUpdate,
    CandlesResponse,
    CheckoutRequest,
    ErrorResponse,
    HealthResponse,
    LoginRequest,
    LoginResponse,
    MeResponse,
    ModelsResponse,
    PlanCreate,
    PlanOut,
    PlansResponse,
    PlanUpdate,
    PredictionResponse,
    PredictRequest,
    RegisterRequest,
    ReorderRequest,
    SearchResponse,
    Timeframe,
    UrlResponse,
    UserOut,
    WatchlistCreate,
    WatchlistItemCreate,
    WatchlistItemOut,
    WatchlistOut,
    WatchlistsResponse,
    WatchlistUpdate,
    WebhookResponse,
)
from serve_app.service import PredictionService

log = logging.getLogger("serve_app.requests")

# Every answer that is not a success, as documented in the OpenAPI schema (Schemathesis checks
# that nothing else comes back): bad input, no session, not found, body too large, invalid,
# quota or rate limit, overloaded or a dependency down.
ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse}
                                           for status in (400, 401, 404, 413, 422, 429, 503)}
SESSION_COOKIE = "session"
STATIC_DIR = Path(__file__).with_name("static")
INDEX_HTML = STATIC_DIR / "index.html"


def _user_out(account: Account) -> dict[str, Any]:
    return {"id": str(account.id), "email": account.email, "name": account.name, "tier": account.tier,
            "created_at": account.created_at}


def _token(request: Request) -> str | None:
    """The session token the request carries, by header or cookie; 4xx when they disagree."""
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE) or None
    bearer = None
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AccountError(401, "invalid_authorization", "the Authorization header must be 'Bearer <token>'")
        bearer = value.strip()
    if bearer is not None and cookie is not None and bearer != cookie:
        raise AccountError(400, "conflicting_credentials",
                           "the Authorization header and the session cookie carry different sessions; send one")
    return bearer or cookie


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
           extra: dict[str, Any] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message}, **{k: v for k, v in (extra or {}).items() if v is not None}}
    return JSONResponse(body, status_code=status, headers=headers)


MAX_BODY_BYTES = 64 * 1024  # the largest body any route takes is a few hundred bytes (a Stripe event: a few kB)
FRAMEWORK_CODES = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


class BodyLimit:
    """ASGI middleware: a body over `max_bytes` is a 413 before anything parses it, whether the
    client declares its length or streams it in chunks."""

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
            await _error(status, FRAMEWORK_CODES[status], message)(scope, receive, send)
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


MAX_IN_FLIGHT = 100  # requests one app answers at once; the rest get 503 `overloaded` at once


class Shed:
    """ASGI middleware: past `limit` requests in flight, answer 503 `overloaded` + Retry-After at
    once, so that a burst is told to come back instead of queueing without bound."""

    def __init__(self, app: Any, limit: int = MAX_IN_FLIGHT) -> None:
        self.app, self.limit, self.in_flight = app, limit, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await _error(503, "overloaded", "the service is busy; please retry in a second",
                         {"Retry-After": "1"})(scope, receive, send)
            return
        self.in_flight += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def create_app(service: PredictionService, accounts: AccountService, billing: BillingService | None = None,
               metrics: Metrics | None = None, portfolio: Portfolio | None = None) -> FastAPI:
    app = FastAPI(title="cryptocast", version="0.1.0",
                  description="30-step crypto forecasts (OHLC, 80 % band, calibrated confidence) from one model per timeframe")
    app.add_middleware(BodyLimit)
    app.add_middleware(Shed)
    app.state.service = service
    app.state.accounts = accounts
    app.state.billing = billing
    app.state.portfolio = portfolio or Portfolio.on(service.engine, load_settings({}).limits)
    app.state.metrics = metrics or Metrics()

    @app.exception_handler(Refusal)
    async def refused(_: Request, exc: Refusal) -> JSONResponse:
        """Every package's refusals (accounts, billing, portfolio, predictions) in one shape."""
        return _error(exc.status, exc.code, exc.message, exc.headers, exc.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {err.get('msg')}")
        malformed = any(err.get("type") == "json_invalid" for err in exc.errors())
        return _error(400 if malformed else 422, "malformed_json" if malformed else "invalid_request",
                      "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def framework_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """What the framework answers itself (unknown route, wrong method, unparsable body), in our shape."""
        code = FRAMEWORK_CODES.get(exc.status_code, f"http_{exc.status_code}")
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}; the API is described at /docs"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; allowed: {(exc.headers or {}).get('Allow', '')}"
        elif exc.status_code == 400:
            message = "the request body could not be read as JSON (UTF-8 text, nested at most a few hundred levels)"
        else:
            message = str(exc.detail)
        return _error(exc.status_code, code, message, dict(exc.headers or {}))

    @app.exception_handler(NoActiveModel)
    async def no_model(_: Request, exc: NoActiveModel) -> JSONResponse:
        return _error(503, "no_model", str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "server_error", "Server error. Please try again.")

    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        ms = (time.perf_counter() - started) * 1000
        route = getattr(request.scope.get("route"), "path", None) or "(no route)"
        app.state.metrics.request(route, response.status_code, ms)
        log.info(json.dumps({"method": request.method, "path": request.url.path, "status": response.status_code,
                             "ms": round(ms, 1)}))
        return response

    def svc(request: Request) -> PredictionService:
        return request.app.state.service

    def caller(request: Request) -> Caller:
        token = _token(request)
        account = None if token is None else request.app.state.accounts.authenticate(token)
        return Caller(account, request.client.host if request.client else "unknown")

    def signed_in(request: Request) -> tuple[Account, str]:
        token = _token(request)
        if token is None:
            raise AccountError(401, "not_signed_in", "sign in first: POST /api/auth/login")
        return request.app.state.accounts.authenticate(token), token

    def generate(request: Request, response: Response, body: PredictRequest, use_cache: bool) -> dict[str, Any]:
        who = caller(request)
        accounts: AccountService = request.app.state.accounts
        quota = accounts.charge(who)
        started = time.perf_counter()
        try:
            answer = svc(request).generate(body, use_cache=use_cache,
                                           user_id=None if who.account is None else who.account.id)
        except BaseException:
            accounts.refund(who)  # no forecast given, nothing counted
            raise
        response.headers.update(accounts.headers(quota))
        m = request.app.state.metrics
        m.cache(answer["cached"])
        if not answer["cached"]:
            m.forecast((time.perf_counter() - started) * 1000)
        return answer

    @app.post("/api/predictions/generate", response_model=PredictionResponse, responses=ERRORS)
    def generate_prediction(request: Request, response: Response, body: PredictRequest) -> dict[str, Any]:
        """A 30-step forecast (or fewer: `num_steps`, `predict_until`), from the 15-minute cache when fresh.
        Counts against the caller's daily quota (X-RateLimit-* headers; 429 `quota_exceeded` beyond it)."""
        return generate(request, response, body, use_cache=True)

    @app.post("/ml/predict", response_model=PredictionResponse, responses=ERRORS)
    def ml_predict(request: Request, response: Response, body: PredictRequest) -> dict[str, Any]:
        """The same forecast, always computed anew (skips the prediction cache); counted like generate."""
        return generate(request, response, body, use_cache=False)

    @app.get("/api/predictions/{prediction_id}", response_model=PredictionResponse, responses=ERRORS)
    def get_prediction(request: Request, prediction_id: str) -> dict[str, Any]:
        """A stored prediction; a signed-in user's predictions are visible to that user alone."""
        who = caller(request)
        return svc(request).get(prediction_id, None if who.account is None else who.account.id)

    # -- accounts -------------------------------------------------------------------------------
    @app.post("/api/auth/register", status_code=201, response_model=UserOut, responses=ERRORS | {409: {"model": ErrorResponse}})
    def register(request: Request, body: RegisterRequest) -> dict[str, Any]:
        """Create an account on the free tier (password: 8 to 128 characters)."""
        return _user_out(request.app.state.accounts.register(body.email, body.password, body.name))

    @app.post("/api/auth/login", response_model=LoginResponse, responses=ERRORS)
    def login(request: Request, response: Response, body: LoginRequest) -> dict[str, Any]:
        """A new session: its token in the answer and in the httpOnly `session` cookie."""
        accounts: AccountService = request.app.state.accounts
        signed = accounts.login(body.email, body.password)
        response.set_cookie(SESSION_COOKIE, signed.token, max_age=accounts.settings.session_ttl_days * 86400,
                            httponly=True, samesite="lax", secure=accounts.settings.cookie_secure, path="/")
        return {"token": signed.token, "expires_at": signed.expires_at, "user": _user_out(signed.account)}

    @app.post("/api/auth/logout", status_code=204, response_class=Response, responses=ERRORS)
    def logout(request: Request) -> Response:
        """End the session the request carries (header or cookie)."""
        _, token = signed_in(request)
        request.app.state.accounts.logout(token)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                               secure=request.app.state.accounts.settings.cookie_secure)
        return response

    # -- billing --------------------------------------------------------------------------------
    def billing_of(request: Request) -> BillingService:
        if request.app.state.billing is None or not request.app.state.billing.settings.enabled:
            raise billing_disabled()
        return request.app.state.billing

    BILLING_ERRORS = ERRORS | {409: {"model": ErrorResponse}, 502: {"model": ErrorResponse}}

    @app.post("/api/billing/checkout", response_model=UrlResponse, responses=BILLING_ERRORS)
    def checkout(request: Request, body: CheckoutRequest) -> dict[str, str]:
        """A Stripe Checkout page for a paid tier; the tier changes when Stripe's webhook confirms it."""
        billing = billing_of(request)
        account, _ = signed_in(request)
        return {"url": billing.checkout(account.id, account.email, body.tier)}

    @app.post("/api/billing/portal", response_model=UrlResponse, responses=BILLING_ERRORS)
    def portal(request: Request) -> dict[str, str]:
        """Stripe's customer portal: change plan, payment method, cancel."""
        billing = billing_of(request)
        account, _ = signed_in(request)
        return {"url": billing.portal(account.id)}

    @app.post("/api/webhooks/stripe", response_model=WebhookResponse, responses=ERRORS)
    async def stripe_webhook(request: Request) -> dict[str, Any]:
        """Stripe's signed events (`Stripe-Signature`); each event id is handled once."""
        billing = billing_of(request)
        payload = await request.body()
        signature = request.headers.get("stripe-signature")
        result = await run_in_threadpool(billing.webhook, payload, signature)
        return {"received": True, "event_id": result.event_id, "outcome": result.outcome}

    # -- watchlists, alerts, trading plans (the signed-in user's own; others' are 404) ----------
    OWN = ERRORS | {403: {"model": ErrorResponse}, 409: {"model": ErrorResponse}}

    def mine(request: Request) -> tuple[Account, Portfolio]:
        account, _ = signed_in(request)
        return account, request.app.state.portfolio

    @app.get("/api/watchlists", response_model=WatchlistsResponse, responses=OWN)
    def list_watchlists(request: Request) -> dict[str, Any]:
        account, p = mine(request)
        return {"watchlists": p.watchlists.list(account.id)}

    @app.post("/api/watchlists", status_code=201, response_model=WatchlistOut, responses=OWN)
    def create_watchlist(request: Request, body: WatchlistCreate) -> dict[str, Any]:
        """A new watchlist; the first is the default, and at most one is."""
        account, p = mine(request)
        return p.watchlists.create(account.id, p.limits_of(account.tier), body.name, body.is_default)

    @app.get("/api/watchlists/{watchlist_id}", response_model=WatchlistOut, responses=OWN)
    def get_watchlist(request: Request, watchlist_id: str) -> dict[str, Any]:
        account, p = mine(request)
        return p.watchlists.get(account.id, watchlist_id)

    @app.patch("/api/watchlists/{watchlist_id}", response_model=WatchlistOut, responses=OWN)
    def update_watchlist(request: Request, watchlist_id: str, body: WatchlistUpdate) -> dict[str, Any]:
        account, p = mine(request)
        return p.watchlists.update(account.id, watchlist_id, body.name, body.is_default)

    @app.delete("/api/watchlists/{watchlist_id}", status_code=204, response_class=Response, responses=OWN)
    def delete_watchlist(request: Request, watchlist_id: str) -> Response:
        account, p = mine(request)
        p.watchlists.delete(account.id, watchlist_id)
        return Response(status_code=204)

    @app.post("/api/watchlists/{watchlist_id}/items", status_code=201, response_model=WatchlistItemOut,
              responses=OWN)
    def add_watchlist_item(request: Request, watchlist_id: str, body: WatchlistItemCreate) -> dict[str, Any]:
        """Add a symbol (409 if it is already there); at the end unless `position` says where."""
        account, p = mine(request)
        return p.watchlists.add_item(account.id, p.limits_of(account.tier), watchlist_id, body.symbol, body.position)

    @app.patch("/api/watchlists/{watchlist_id}/items", response_model=WatchlistOut, responses=OWN)
    def reorder_watchlist(request: Request, watchlist_id: str, body: ReorderRequest) -> dict[str, Any]:
        """Set the positions of items in one request (all or nothing)."""
        account, p = mine(request)
        return p.watchlists.reorder(account.id, watchlist_id, {i.item_id: i.position for i in body.positions})

    @app.delete("/api/watchlists/{watchlist_id}/items/{item_id}", status_code=204, response_class=Response,
                responses=OWN)
    def remove_watchlist_item(request: Request, watchlist_id: str, item_id: str) -> Response:
        account, p = mine(request)
        p.watchlists.remove_item(account.id, watchlist_id, item_id)
        return Response(status_code=204)

    @app.get("/api/alerts", response_model=AlertsResponse, responses=OWN)
    def list_alerts(request: Request) -> dict[str, Any]:
        account, p = mine(request)
        return {"alerts": p.alerts.list(account.id)}

    @app.post("/api/alerts", status_code=201, response_model=AlertOut, responses=OWN)
    def create_alert(request: Request, body: AlertCreate) -> dict[str, Any]:
        """A price alert: above, below or crossing `target_price`, until `expires_at`."""
        account, p = mine(request)
        return p.alerts.create(account.id, p.limits_of(account.tier), body.symbol, body.condition_type,
                               body.target_price, body.expires_at, datetime.now(timezone.utc))

    @app.get("/api/alerts/{alert_id}", response_model=AlertOut, responses=OWN)
    def get_alert(request: Request, alert_id: str) -> dict[str, Any]:
        account, p = mine(request)
        return p.alerts.get(account.id, alert_id)

    @app.patch("/api/alerts/{alert_id}", response_model=AlertOut, responses=OWN)
    def update_alert(request: Request, alert_id: str, body: AlertUpdate) -> dict[str, Any]:
        account, p = mine(request)
        return p.alerts.update(account.id, p.limits_of(account.tier), alert_id, body.model_dump(exclude_unset=True),
                               datetime.now(timezone.utc))

    @app.delete("/api/alerts/{alert_id}", status_code=204, response_class=Response, responses=OWN)
    def delete_alert(request: Request, alert_id: str) -> Response:
        account, p = mine(request)
        p.alerts.delete(account.id, alert_id)
        return Response(status_code=204)

    @app.get("/api/alerts/{alert_id}/logs", response_model=AlertLogsResponse, responses=OWN)
    def alert_logs(request: Request, alert_id: str) -> dict[str, Any]:
        """Each trigger of the alert and what became of its notification."""
        account, p = mine(request)
        return {"logs": p.alerts.logs(account.id, alert_id)}

    @app.get("/api/trading-plans", response_model=PlansResponse, responses=OWN)
    def list_plans(request: Request) -> dict[str, Any]:
        account, p = mine(request)
        return {"trading_plans": p.plans.list(account.id)}

    @app.post("/api/trading-plans", status_code=201, response_model=PlanOut, responses=OWN)
    def create_plan(request: Request, body: PlanCreate) -> dict[str, Any]:
        """A trading plan; `risk_reward` is computed from entry, target and stop."""
        account, p = mine(request)
        return p.plans.create(account.id, body.symbol, body.model_dump(exclude={"symbol"}, exclude_unset=True))

    @app.get("/api/trading-plans/{plan_id}", response_model=PlanOut, responses=OWN)
    def get_plan(request: Request, plan_id: str) -> dict[str, Any]:
        account, p = mine(request)
        return p.plans.get(account.id, plan_id)

    @app.patch("/api/trading-plans/{plan_id}", response_model=PlanOut, responses=OWN)
    def update_plan(request: Request, plan_id: str, body: PlanUpdate) -> dict[str, Any]:
        """Change a plan; `status: closed` sets `closed_at`."""
        account, p = mine(request)
        return p.plans.update(account.id, plan_id, body.model_dump(exclude_unset=True))

    @app.delete("/api/trading-plans/{plan_id}", status_code=204, response_class=Response, responses=OWN)
    def delete_plan(request: Request, plan_id: str) -> Response:
        account, p = mine(request)
        p.plans.delete(account.id, plan_id)
        return Response(status_code=204)

    @app.get("/api/me", response_model=MeResponse, responses=ERRORS)
    def me(request: Request) -> dict[str, Any]:
        """The signed-in user, their tier and today's forecast usage."""
        account, _ = signed_in(request)
        usage = request.app.state.accounts.usage(Caller(account, ""))
        return {"user": _user_out(account), "tier": account.tier,
                "usage": {"date": usage.date.isoformat(), "api_calls": usage.api_calls, "limit": usage.limit,
                          "remaining": usage.remaining, "reset_at": usage.reset_at}}

    @app.get("/api/symbols/search", response_model=SearchResponse, responses=ERRORS)
    def search(request: Request, q: str = Query(..., max_length=50, pattern=PRINTABLE_PATTERN),
               limit: int = 10) -> dict[str, Any]:
        return {"query": q, "results": svc(request).search(q, limit)}

    @app.get("/api/candles", response_model=CandlesResponse, responses=ERRORS)
    def candles(request: Request, symbol: str = Query(..., min_length=1, max_length=20, pattern=TICKER_PATTERN),
                timeframe: Timeframe = "1d", limit: int = 200) -> dict[str, Any]:
        """The recent closed candles a forecast starts from (at most 500), as the forecast reads them."""
        return svc(request).candles(symbol, timeframe, limit)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        """The web page: search, timeframe, the forecast on a candlestick chart."""
        return HTMLResponse(INDEX_HTML.read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/models/{timeframe}/accuracy", response_model=AccuracyResponse, responses=ERRORS)
    def model_accuracy(request: Request, timeframe: Timeframe, days: int = 30) -> dict[str, Any]:
        """How the active model's served forecasts fared against the candles that then closed, per
        horizon, with naive on the same steps beside it and a reliability table (stated confidence
        against the observed hit rate). Filled by `python -m jobs.track_accuracy`."""
        return svc(request).accuracy(timeframe, days)

    @app.get("/api/models", response_model=ModelsResponse, responses=ERRORS)
    def models(request: Request) -> dict[str, Any]:
        return {"models": svc(request).models()}

    @app.get("/api/health", response_model=HealthResponse, responses=ERRORS)
    def health(request: Request) -> dict[str, Any]:
        return svc(request).health(request.app.state.versions())

    app.state.versions = lambda: {}
    return app
