"""Build the prediction service from the settings: database, cache, market source, registry."""

from __future__ import annotations

from config import TIMEFRAMES, Settings
from market_data.factory import make_source
from serve_app.active_models import ActiveModels
from serve_app.service import ForecastFn, PredictionService, WindowFn
from storage.cache import RedisCache, make_cache
from storage.db import make_engine
from storage.migrate import upgrade
from storage.registry import ModelRegistry


def build_service(settings: Settings, forecast: ForecastFn | None = None, window: WindowFn | None = None,
                  cache_prefix: str = "") -> tuple[PredictionService, ActiveModels | None]:
    """The service, forecasting in this process unless `forecast`/`window` are given (Ray Serve)."""
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    cache = make_cache(settings.redis_url, cache_prefix)
    if isinstance(cache, RedisCache):
        cache.ping()
    registry = ModelRegistry(engine, settings.model_dir)
    models = None
    if forecast is None or window is None:
        models = ActiveModels(registry, list(TIMEFRAMES))
        forecast, window = models.forecast, models.window
    return PredictionService(engine, cache, make_source(settings), registry, forecast, window), models
