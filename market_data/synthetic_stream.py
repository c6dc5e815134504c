"""A seeded live stream for the synthetic market: per-second aggregates that start from each
ticker's last closed close and walk on with the volatility of its recent candles, so that the
forming candle continues the closed ones."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import datetime

import numpy as np
import pandas as pd

from clock import utc_now
from market_data.source import MarketSource
from market_data.stream import CONNECTED, StatusSink, Tick, TickSink

HOURLY_TO_SECOND = 1 / 60.0  # a random walk's sd scales with sqrt(time): sqrt(1 / 3600)


def last_hourly_close(source: MarketSource, ticker: str, clock: Callable[[], datetime] = utc_now) -> tuple[float, float]:
    """The close of the last hourly candle closed by now, and the sd of the day's hourly log
    returns before it: where and how fast the walk goes on."""
    now = pd.Timestamp(clock())
    hourly = source.aggregates(ticker, "1h", (now - pd.Timedelta(hours=25)).to_pydatetime(), now.to_pydatetime())
    hourly = hourly[hourly["timestamp"] + pd.Timedelta(hours=1) <= now]
    if hourly.empty:
        raise ValueError(f"the synthetic market has no hourly candle of {ticker} in the last day")
    closes = hourly["close"].to_numpy(dtype=float)
    sd = float(np.std(np.diff(np.log(closes)))) if len(closes) > 2 else 0.01
    return float(closes[-1]), sd


class SyntheticStream:
    name = "synthetic"

    def __init__(self, last_close: Callable[[str], tuple[float, float]], seed: int = 7, interval_s: float = 1.0,
                 clock: Callable[[], datetime] = utc_now) -> None:
        """`last_close(ticker)`: the last closed close and the sd of its recent hourly log returns."""
        self.last_close, self.seed, self.interval_s, self.clock = last_close, seed, interval_s, clock
        self._walks: dict[str, tuple[float, float, np.random.Generator]] = {}
        self._wanted: set[str] = set()

    def now(self) -> datetime:
        return self.clock()

    def subscribe(self, ticker: str) -> None:
        self._wanted.add(ticker)

    def unsubscribe(self, ticker: str) -> None:
        self._wanted.discard(ticker)
        self._walks.pop(ticker, None)

    def _step(self, ticker: str) -> Tick:
        if ticker not in self._walks:
            price, hourly_sd = self.last_close(ticker)
            digest = hashlib.sha256(f"{self.seed}:{ticker}".encode()).digest()
            self._walks[ticker] = (price, max(hourly_sd, 1e-4), np.random.default_rng(int.from_bytes(digest[:8])))
        price, sd, rng = self._walks[ticker]
        path = price * np.exp(np.cumsum(rng.normal(0.0, sd * HOURLY_TO_SECOND / 2, size=4)))
        close = float(path[-1])
        self._walks[ticker] = (close, sd, rng)
        return Tick(ticker, self.clock(), price, float(max(price, path.max())), float(min(price, path.min())), close,
                    float(rng.exponential(1.0)))

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        on_status(CONNECTED, "synthetic market stream")
        while True:
            for ticker in sorted(self._wanted):
                on_tick(self._step(ticker))
            await asyncio.sleep(self.interval_s)
