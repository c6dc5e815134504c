"""Symbols and their recent closed candles, as every forecast reads them: the fresh-candle cache
(1 h), else the market source. The symbol search and the candles the page draws use the same
path, so a chart shows exactly the candles its forecast started from."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from market_data.source import AuthenticationError, MarketDataError, MarketSource, RateLimited, UnknownTickerError
from market_data.timeframes import spec
from predictions.errors import MarketUnavailable, PredictionError
from predictions.symbols import resolve
from storage.cache import FRESH_CANDLES_TTL_S, Cache, fresh_candles_key, get_frame, set_frame
from storage.db import session_scope
from storage.lake import RETENTION_DAYS
from storage.schema import Symbol

log = logging.getLogger(__name__)
SHORT_TTL_S = 60  # how long too few candles stay cached
MAX_CANDLES = 500  # the most candles /api/candles answers
MAX_SEARCH = 100  # the most symbols one search answers

WindowFn = Callable[[str], int]  # timeframe -> candles one forecast reads


class MarketView:
    def __init__(self, engine: Engine, cache: Cache, source: MarketSource, window: WindowFn,
                 clock: Callable[[], datetime]) -> None:
        self.engine, self.cache, self.source, self.window, self.clock = engine, cache, source, window, clock

    def symbol(self, ticker: str) -> Symbol:
        """The listed symbol `ticker` names, however a person writes it (`predictions.symbols`);
        404 in the user's terms otherwise."""
        with session_scope(self.engine) as session:
            return resolve(session, ticker)

    def search(self, query: str, limit: int) -> list[Symbol]:
        """Active ranked symbols whose ticker or name contains `query`; prefixes first, then by rank."""
        text = query.strip()
        if not text:
            raise PredictionError(400, "bad_query", "q must not be empty")
        if not 1 <= limit <= MAX_SEARCH:
            raise PredictionError(400, "bad_limit", f"limit must be between 1 and {MAX_SEARCH}, got {limit}")
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        ticker, name = sa.func.lower(Symbol.ticker), sa.func.lower(Symbol.name)
        bare = sa.func.lower(sa.func.replace(Symbol.ticker, "X:", ""))
        prefix = sa.or_(ticker.like(f"{escaped}%", escape="\\"), bare.like(f"{escaped}%", escape="\\"),
                        name.like(f"{escaped}%", escape="\\"))
        contains = sa.or_(ticker.like(f"%{escaped}%", escape="\\"), name.like(f"%{escaped}%", escape="\\"))
        with session_scope(self.engine) as session:
            return list(session.exec(
                select(Symbol)
                .where(Symbol.is_active.is_(True), Symbol.volume_rank.is_not(None), contains)
                .order_by(sa.case((prefix, 0), else_=1), Symbol.volume_rank, Symbol.ticker)
                .limit(limit)
            ).all())

    def recent(self, ticker: str, timeframe: str, limit: int) -> tuple[Symbol, pd.DataFrame]:
        """The last `limit` closed candles of a listed symbol, as its forecast reads them."""
        if not 1 <= limit <= MAX_CANDLES:
            raise PredictionError(400, "bad_limit", f"limit must be between 1 and {MAX_CANDLES}, got {limit}")
        symbol = self.symbol(ticker)
        return symbol, self.candles(symbol, timeframe).iloc[-limit:]

    def candles(self, symbol: Symbol, timeframe: str) -> pd.DataFrame:
        """Fresh candles, or the API's answer to a market-data failure: 429 with Retry-After when
        rate limited, `MarketUnavailable` (503) otherwise."""
        try:
            return self._fresh_candles(symbol.ticker, timeframe)
        except RateLimited as exc:
            after = str(int(math.ceil(exc.retry_after_s or 60)))
            raise PredictionError(429, "rate_limited", "Too many requests to market data. Please wait a moment.",
                                  headers={"Retry-After": after}) from exc
        except (MarketDataError, OSError) as exc:
            log.warning("market data for %s %s unavailable: %s", symbol.ticker, timeframe, exc)
            raise MarketUnavailable("Unable to connect to market data. Please try again in a minute") from exc

    def _fresh_candles(self, ticker: str, timeframe: str) -> pd.DataFrame:
        """Closed candles at most an hour old: from the cache, or the market source (then cached).
        Too few candles are cached for a minute only, so a source that catches up is seen soon."""
        key = fresh_candles_key(ticker, timeframe)
        cached = get_frame(self.cache, key)
        if cached is not None:
            return cached
        now = pd.Timestamp(self.clock())
        tf = spec(timeframe)
        count = self.window(timeframe) + 10
        start = now - pd.Timedelta(hours=tf.approx_hours * count * 1.1 + 48)
        candles = self._closed(ticker, timeframe, start, now)
        enough = len(candles) >= self.window(timeframe)
        set_frame(self.cache, key, candles, FRESH_CANDLES_TTL_S if enough else SHORT_TTL_S)
        return candles

    def _closed(self, ticker: str, timeframe: str, start: pd.Timestamp, now: pd.Timestamp) -> pd.DataFrame:
        tf = spec(timeframe)
        try:
            candles = self.source.aggregates(ticker, timeframe, start.to_pydatetime(), now.to_pydatetime())
        except UnknownTickerError as exc:
            raise PredictionError(404, "no_market_data", f"the market source has no data for {ticker}") from exc
        except AuthenticationError as exc:
            raise MarketDataError(str(exc)) from exc
        if not candles.empty:
            closes_at = candles["timestamp"].map(lambda t: tf.next_open(t))
            candles = candles[closes_at <= now].reset_index(drop=True)  # the still-open candle is not final
        return candles

    def too_little_history(self, ticker: str, timeframe: str, have: int, needed: int) -> PredictionError:
        """Say why a symbol has too few recent candles: a short history, or data that stopped."""
        now = pd.Timestamp(self.clock())
        tf = spec(timeframe)
        if have == 0:  # nothing recent: look back over the lake's whole retention for the last candle
            older = self._closed(ticker, timeframe, now - pd.Timedelta(days=RETENTION_DAYS[timeframe]), now)
            if not older.empty:
                last = pd.Timestamp(older["timestamp"].iloc[-1])
                days = (now - last).days
                return PredictionError(422, "stale_market_data",
                                       f"the latest {timeframe} candle of {ticker} is {last.date().isoformat()}, "
                                       f"{days} days ago; a forecast needs the last {needed} candles up to now")
            return PredictionError(422, "not_enough_history", f"the market source has no {timeframe} candles of {ticker}")
        return PredictionError(422, "not_enough_history",
                               f"{ticker} has {have} closed {timeframe} candles up to {now.isoformat()}; a forecast "
                               f"needs {needed} (about {needed * tf.approx_hours / 24:.0f} days of history)")


def candle_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Candles as the API answers them (JSON edge)."""
    return [{"timestamp": pd.Timestamp(r.timestamp).isoformat(), "open": float(r.open), "high": float(r.high),
             "low": float(r.low), "close": float(r.close), "volume": float(r.volume)}
            for r in frame.itertuples(index=False)]
