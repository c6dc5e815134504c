"""The interface every market-data source implements, and the errors they raise.

A source lists tickers, returns the aggregates (candles) of one ticker for a timeframe and a time
range, and the grouped daily aggregates of every ticker for one day. Candles come back as a
DataFrame with `timestamp` (UTC), `open, high, low, close, volume, vwap`, cleaned and sorted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

import pandas as pd

CANDLE_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume", "vwap"]
GROUPED_COLUMNS = ["ticker", "timestamp", "open", "high", "low", "close", "volume", "vwap"]


@dataclass(frozen=True)
class TickerInfo:
    ticker: str  # "X:BTCUSD"
    name: str
    base_currency: str | None
    quote_currency: str | None


class MarketDataError(RuntimeError):
    """The market-data source could not answer."""


class MarketDataUnavailable(MarketDataError):
    """The source is down or keeps failing (5xx, connection errors) after retries."""


class RateLimited(MarketDataError):
    """The source still answers 429 after retries; `retry_after_s` is its own hint, if it gave one."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AuthenticationError(MarketDataError):
    """The API key is missing or invalid (401/403)."""


class UnknownTickerError(MarketDataError):
    """The source does not know this ticker."""


class MarketSource(Protocol):
    name: str

    def list_tickers(self) -> list[TickerInfo]: ...

    def aggregates(self, ticker: str, timeframe: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Candles whose open time lies in [start, end], oldest first."""
        ...

    def grouped_daily(self, day: date) -> pd.DataFrame:
        """One daily candle per ticker for `day` (columns GROUPED_COLUMNS)."""
        ...


def empty_candles() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in CANDLE_COLUMNS})
    frame["timestamp"] = pd.Series(dtype="datetime64[ms, UTC]")
    return frame


def utc(moment: datetime | pd.Timestamp | str) -> pd.Timestamp:
    """Any moment as a UTC pandas Timestamp; naive values are taken as UTC."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
