"""Incremental updates of the lake: fetch only what is newer, clean, append, trim (fanned out on
Ray by `engine.ingest`).

For each symbol and timeframe the lake is asked for its last candle; the source is asked for
everything from that candle (again, as it may have been incomplete) to `as_of`. A lake without
the pair starts at the retention horizon. Every pair is written atomically on its own, so a
killed run loses nothing it wrote and a re-run fetches only what is still missing. A pair that
fails is reported and skipped; the others finish.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from config import Settings
from market_data.budget import RequestBudget
from market_data.factory import make_source
from market_data.source import MarketSource, utc
from market_data.timeframes import TIMEFRAME_SPECS
from storage.lake import RETENTION_DAYS, Lake

log = logging.getLogger(__name__)

DEFAULT_REQUESTS_PER_MINUTE = 3000  # the Developer plan's limit
DEFAULT_MAX_IN_FLIGHT = 8


@dataclass(frozen=True)
class PairResult:
    ticker: str
    timeframe: str
    status: str  # "ok" | "empty" | "failed"
    fetched: int = 0
    added: int = 0
    stored: int = 0
    seconds: float = 0.0
    message: str = ""


def fetch_window(lake: Lake, ticker: str, timeframe: str, as_of: datetime,
                 history_as_of: datetime | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of what to fetch: from the last stored candle (inclusive) or the retention
    horizon. With `history_as_of` (a backtest's train end), the horizon is counted back from it,
    and a lake that starts later than that horizon (filled at another time) is fetched from it."""
    end = utc(as_of)
    horizon = utc(history_as_of or as_of) - timedelta(days=RETENTION_DAYS[timeframe])
    stamps = lake.read(ticker, timeframe, columns=["timestamp"])["timestamp"]  # read once: first and last
    if stamps.empty:
        return horizon, end
    if history_as_of is not None and stamps.iloc[0] > TIMEFRAME_SPECS[timeframe].next_open(horizon):
        return horizon, end
    return max(stamps.iloc[-1], horizon), end


def update_pair(lake: Lake, source: MarketSource, ticker: str, timeframe: str, as_of: datetime,
                history_as_of: datetime | None = None) -> PairResult:
    """The pair's candles up to `as_of`, each timeframe's retention kept before `history_as_of`
    (default `as_of`): a backtest fills to its test end and keeps what its train end had."""
    started = time.perf_counter()
    try:
        start, end = fetch_window(lake, ticker, timeframe, as_of, history_as_of)
        candles = source.aggregates(ticker, timeframe, start.to_pydatetime(), end.to_pydatetime())
        # a candle that opens at `as_of` or later was not known at `as_of`
        candles = candles[candles["timestamp"] < end]
        if candles.empty:
            return PairResult(ticker, timeframe, "empty", seconds=time.perf_counter() - started,
                              message=f"no candles from {start} to {end}")
        before = lake.read(ticker, timeframe, columns=["timestamp"])["timestamp"]
        stored = lake.append(ticker, timeframe, candles, as_of=history_as_of or as_of)
        added = int((~stored["timestamp"].isin(before)).sum())
        return PairResult(ticker, timeframe, "ok", fetched=len(candles), added=added, stored=len(stored),
                          seconds=time.perf_counter() - started)
    except Exception as exc:
        log.warning("update %s %s failed: %s", ticker, timeframe, exc)
        return PairResult(ticker, timeframe, "failed", seconds=time.perf_counter() - started,
                          message=f"{type(exc).__name__}: {exc}")


def update_symbol(lake: Lake, source: MarketSource, ticker: str, timeframes: Sequence[str],
                  as_of: datetime, history_as_of: datetime | None = None) -> list[PairResult]:
    return [update_pair(lake, source, ticker, tf, as_of, history_as_of) for tf in timeframes]


def update_local(settings: Settings, tickers: Iterable[str], timeframes: Sequence[str], as_of: datetime,
                 requests_per_minute: float = DEFAULT_REQUESTS_PER_MINUTE,
                 history_as_of: datetime | None = None) -> list[PairResult]:
    """The plain single-process loop (the baseline the Ray path is measured against)."""
    budget = RequestBudget(requests_per_minute)
    source = make_source(settings, throttle=budget.wait)
    lake = Lake(settings.data_dir)
    return [r for t in tickers for r in update_symbol(lake, source, t, timeframes, as_of, history_as_of)]
