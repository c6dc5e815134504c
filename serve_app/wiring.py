"""Build the prediction service from the settings: database, cache, market source, registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from accounts.service import AccountService
from billing.service import BillingService
from clock import utc_now
from config import Settings
from mail.sender import EmailNotifier
from market_data.factory import make_source, make_stream, streams_live
from market_data.source import MarketSource
from market_data.timeframes import TIMEFRAMES
from portfolio.service import Portfolio
from predictions.market import MarketView, WindowFn
from predictions.service import ForecastFn, PredictionService
from serve_app.active_models import ActiveModels
from storage.cache import RedisCache, make_cache
from storage.db import make_engine
from storage.migrate import require_current
from storage.registry import ModelRegistry
from streaming.admission import Admission
from streaming.hub import LiveHub
from streaming.live import LiveMarket
from streaming.relay import RelayedStream
from streaming.seed import seed_from
from transparency.log import TransparencyLog
from transparency.log import for_settings as transparency_log


def _fixed(moment: datetime) -> Callable[[], datetime]:
    """SERVE_AS_OF: forecasts are made as of this moment (candles closed by then, steps after it);
    accounts, quotas and sessions keep the real clock."""
    return lambda: moment


@dataclass
class Services:
    """What the HTTP app runs on; `models` is set when forecasts run in this process."""

    predictions: PredictionService
    accounts: AccountService
    billing: BillingService
    portfolio: Portfolio
    models: ActiveModels | None
    log: TransparencyLog
    live: LiveMarket | None = None


def build_service(settings: Settings, forecast: ForecastFn | None = None, window: WindowFn | None = None,
                  cache_prefix: str = "", live_stream: RelayedStream | None = None) -> Services:
    """The services, forecasting in this process unless `forecast`/`window` are given (Ray Serve),
    with live candles from the market's own stream unless `live_stream` relays one (Ray Serve). The
    database must be migrated already (`storage.migrate.require_current`): a replica never migrates."""
    engine = make_engine(settings.database_url)
    require_current(engine)
    cache = make_cache(settings.redis_url, cache_prefix)
    if isinstance(cache, RedisCache):
        cache.ping()
    registry = ModelRegistry(engine, settings.model_dir)
    models = None
    if forecast is None or window is None:
        models = ActiveModels(registry, list(TIMEFRAMES))
        forecast, window = models.forecast, models.window
    clock = _fixed(settings.serve_as_of) if settings.serve_as_of else utc_now
    source = make_source(settings)
    market = MarketView(engine, cache, source, window, clock)
    return Services(PredictionService(engine, cache, market, registry, forecast, in_log=settings.serve_as_of is None),
                    AccountService(engine, cache, settings.accounts, mail=EmailNotifier(settings.email)),
                    BillingService(engine, settings.billing),
                    Portfolio.on(engine, settings.limits, clock), models,
                    transparency_log(engine, settings.ledger, settings.serve_state_dir),
                    live_market(settings, source, live_stream))


def live_market(settings: Settings, source: MarketSource, relayed: RelayedStream | None = None) -> LiveMarket | None:
    """The live candles of this process: its market's stream (or the cluster's, `relayed`) fanned
    out to its sockets; none where the market has no live stream."""
    if not streams_live(settings):
        return None
    if relayed is None:
        stream = make_stream(settings, source)
        assert stream is not None  # streams_live said the market has one
        return LiveMarket(LiveHub(stream, seed_from(source)), Admission(settings.live.max_sockets))
    return LiveMarket(LiveHub(relayed, seed_from(source)), Admission(settings.live.max_sockets),
                      lambda: relayed.subscriptions)
