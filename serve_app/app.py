"""The HTTP API (FastAPI): the routers of every domain behind one set of middleware and error
handlers.

The same app runs behind Ray Serve's ingress (`serve_app.deployments`) and, for tests and the
benchmark's baseline, on its own (`create_app(service, accounts)`). Routes get the services the
app is built with, and the caller, as dependencies (`serve_app.dependencies`).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from accounts.service import AccountService
from billing.service import BillingService
from config import LedgerSettings, load_settings
from portfolio.service import Portfolio
from predictions.service import PredictionService
from serve_app.errors import install_handlers
from serve_app.metrics import Metrics
from serve_app.middleware import BodyLimit, SecurityHeaders, Shed, observe
from serve_app.routers import (
    accounts,
    billing,
    health,
    live,
    market,
    models,
    pages,
    portfolio,
    predictions,
    sessions,
    track_record,
    transparency,
)
from serve_app.routers.pages import STATIC_DIR
from serve_app.stopping import InFlight
from streaming.live import LiveMarket
from transparency.log import TransparencyLog
from transparency.note import Signer

ROUTERS = (predictions, market, live, accounts, sessions, portfolio, billing, models, transparency, track_record, health,
           pages)


def create_app(service: PredictionService, accounts: AccountService, billing: BillingService | None = None,
               metrics: Metrics | None = None, portfolio: Portfolio | None = None,
               live_market: LiveMarket | None = None) -> FastAPI:
    """The app, on the services given; `app.state.versions` reports the active model versions
    (set by the Serve ingress; none by default). Without `live_market` the live socket answers
    that there is no live market. `app.state.log` is the public log, its checkpoints signed with a
    key of this process alone until the Serve ingress sets the service's own (`build_service`). Once
    `app.state.stopping()` is true (the Serve ingress sets it:
    `serve_app.stopping`) every new request is a 503 `stopping`."""
    app = FastAPI(title="cryptocast", version="0.1.0",
                  description="30-step crypto forecasts (OHLC, 80 % band, calibrated confidence) from one model per timeframe")
    app.add_middleware(BodyLimit)
    app.state.stopping = lambda: False
    app.state.in_flight = InFlight()
    app.add_middleware(Shed, stopping=lambda: bool(app.state.stopping()), in_flight=app.state.in_flight)
    app.add_middleware(SecurityHeaders, https=accounts.settings.public_base_url.startswith("https://"))  # outermost
    app.middleware("http")(observe)
    install_handlers(app)
    app.state.service = service
    app.state.accounts = accounts
    app.state.billing = billing
    app.state.portfolio = portfolio or Portfolio.on(service.engine, load_settings({}).limits)
    app.state.metrics = metrics or Metrics()
    app.state.versions = dict
    app.state.live = live_market
    app.state.log = TransparencyLog(service.engine, Signer.generate(LedgerSettings().origin), 0.0)
    if live_market is not None:
        live_market.hub.reporter = app.state.metrics.live

        async def start_live() -> None:
            live_market.hub.start()

        app.router.on_startup.append(start_live)
    for module in ROUTERS:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
