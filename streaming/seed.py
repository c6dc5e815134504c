"""Where a live candle starts: the last candle closed before the forming bucket, and what the
source already knows of the forming bucket (its closed hours), so that a daily candle opened
hours before the viewer arrived shows the day's high and low, not only what moved since.

Both are read from the market source at the stream's time (a replay's time is not the clock's).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from market_data.source import MarketDataError, MarketSource
from market_data.timeframes import spec
from streaming.candles import Candle, bucket_of
from streaming.hub import Seeder

HOUR = pd.Timedelta(hours=1)


class NothingToContinue(MarketDataError):
    """The source has no closed candle before the forming one: no price to open it at."""


def seed_from(source: MarketSource) -> Seeder:
    def seed(ticker: str, timeframe: str, now: datetime) -> tuple[float, Candle | None]:
        tf = spec(timeframe)
        opened = pd.Timestamp(bucket_of(now, timeframe))
        back = opened - pd.Timedelta(hours=tf.approx_hours * 3 + 48)
        before = source.aggregates(ticker, timeframe, back.to_pydatetime(), (opened - pd.Timedelta(milliseconds=1)).to_pydatetime())
        before = before[before["timestamp"] < opened]
        if before.empty:
            raise NothingToContinue(f"{ticker} has no {timeframe} candle closed before {opened.isoformat()}")
        last_close = float(before["close"].iloc[-1])
        if timeframe == "1h":
            return last_close, None
        hours = source.aggregates(ticker, "1h", opened.to_pydatetime(), pd.Timestamp(now).to_pydatetime())
        hours = hours[(hours["timestamp"] >= opened) & (hours["timestamp"] + HOUR <= pd.Timestamp(now))]
        if hours.empty:
            return last_close, None
        return last_close, Candle(opened.to_pydatetime(), float(hours["open"].iloc[0]), float(hours["high"].max()),
                                  float(hours["low"].min()), float(hours["close"].iloc[-1]), float(hours["volume"].sum()))

    return seed
