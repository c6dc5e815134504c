"""Build the market source that `MARKET_SOURCE` names."""

from __future__ import annotations

from collections.abc import Callable

from config import Settings
from market_data.source import MarketSource

SYNTHETIC_SEED = 7
SYNTHETIC_COINS = 600


def make_source(settings: Settings, throttle: Callable[[], None] | None = None) -> MarketSource:
    kind = settings.market_source.kind
    if kind == "synthetic":
        from market_data.synthetic import SyntheticMarket

        return SyntheticMarket(seed=SYNTHETIC_SEED, n_coins=SYNTHETIC_COINS)
    if kind == "csv":
        from market_data.csv_source import CsvSource

        if settings.market_source.csv_dir is None:
            raise ValueError("MARKET_SOURCE=csv needs a directory: csv:<dir>")
        return CsvSource(settings.market_source.csv_dir)
    from market_data.massive_source import MassiveSource

    return MassiveSource(settings.massive_api_key, settings.massive_api_base, retries=settings.massive_retries,
                         backoff_factor=settings.massive_backoff_s, throttle=throttle)
