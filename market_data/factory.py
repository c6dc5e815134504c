"""Build the market source that `MARKET_SOURCE` names."""

from __future__ import annotations

from collections.abc import Callable

from config import Settings, secret
from market_data.source import MarketSource
from market_data.stream import MarketStream

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

    return MassiveSource(secret(settings.massive_api_key), settings.massive_api_base, retries=settings.massive_retries,
                         backoff_factor=settings.massive_backoff_s, throttle=throttle)


def streams_live(settings: Settings) -> bool:
    """Whether the configured market has a live stream (`make_stream` builds one): every source
    served as of a past moment, and every kind but a CSV export served as of now."""
    return settings.serve_as_of is not None or settings.market_source.kind != "csv"


def make_stream(settings: Settings, source: MarketSource) -> MarketStream | None:
    """The live stream beside `source`: Massive's socket, the seeded synthetic walk, or a replay
    of the source's candles from SERVE_AS_OF (any source served as of a past moment); none for
    a CSV export served as of now (it has no future to replay)."""
    if not streams_live(settings):
        return None
    if settings.serve_as_of is not None:
        from market_data.replay_stream import ReplayStream

        return ReplayStream(source, settings.serve_as_of, speed=settings.live.replay_speed)
    kind = settings.market_source.kind
    if kind == "massive":
        from market_data.massive_stream import MassiveStream

        return MassiveStream(secret(settings.massive_api_key) or "", settings.live.massive_ws_base)
    from market_data.synthetic_stream import SyntheticStream, last_hourly_close

    return SyntheticStream(lambda ticker: last_hourly_close(source, ticker), seed=SYNTHETIC_SEED)
