"""A replay of a source's own candles as a live stream, from a past moment at `speed` times real
time (`csv:` under `SERVE_AS_OF`), so that a demo on historical data moves too.

Each of the finest candles the source has (hourly, else daily) becomes four ticks through its
bar: open, then the extreme nearer the open, the other extreme, and the close, a quarter of the
bar apart. The replayed time is the market's time: candles close by it, not by the wall clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from market_data.source import MarketSource, utc
from market_data.stream import CONNECTED, StatusSink, Tick, TickSink
from market_data.timeframes import spec

FINEST = ("1h", "1d")
CHUNK = timedelta(days=7)  # ticks prepared ahead per ticker


@dataclass
class _Tape:
    ticks: list[Tick]
    until: datetime  # ticks are prepared up to here
    after: datetime  # ticks up to here happened before the subscription: not sent
    at: int = 0  # the next tick to send


def bar_ticks(ticker: str, candles: pd.DataFrame, timeframe: str) -> list[Tick]:
    """Four ticks per candle, in time order."""
    step = (spec(timeframe).next_open(pd.Timestamp("2024-01-01", tz="UTC")) - pd.Timestamp("2024-01-01", tz="UTC")) / 4
    out: list[Tick] = []
    for row in candles.itertuples(index=False):
        at = pd.Timestamp(row.timestamp).to_pydatetime()
        first, second = (row.low, row.high) if row.close >= row.open else (row.high, row.low)
        volume = float(row.volume) / 4
        path = (row.open, first, second, row.close)
        for k, price in enumerate(path):
            out.append(Tick(ticker, at + k * step.to_pytimedelta(), float(price), float(price), float(price),
                            float(price), volume))
    return out


class ReplayStream:
    name = "replay"

    def __init__(self, source: MarketSource, start: datetime, speed: float = 60.0, interval_s: float = 0.25,
                 wall: Callable[[], float] = time.monotonic) -> None:
        if speed <= 0:
            raise ValueError(f"a replay's speed must be positive, got {speed}")
        self.source, self.start, self.speed, self.interval_s, self.wall = source, utc(start).to_pydatetime(), speed, interval_s, wall
        self._began = wall()
        self._tapes: dict[str, _Tape] = {}

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(self.wall() - self._began) * self.speed)

    def subscribe(self, ticker: str) -> None:
        """The tape is prepared from a day back; the hour now forming is sent from its start (what
        of it already happened arrives at once), so a viewer who joins at 12:50 sees the 12:00
        candle whole, as the market traded it. Earlier hours are the source's closed candles."""
        now = self.now()
        hour = now.replace(minute=0, second=0, microsecond=0)
        self._tapes[ticker] = _Tape([], now - timedelta(days=1), hour - timedelta(microseconds=1))

    def unsubscribe(self, ticker: str) -> None:
        self._tapes.pop(ticker, None)

    def _extend(self, ticker: str, tape: _Tape) -> None:
        end = tape.until + CHUNK
        for timeframe in FINEST:
            candles = self.source.aggregates(ticker, timeframe, tape.until, end)
            candles = candles[candles["timestamp"] >= pd.Timestamp(tape.until)]
            if not candles.empty:
                tape.ticks, tape.at = tape.ticks[tape.at:] + bar_ticks(ticker, candles, timeframe), 0
                break
        tape.until = end

    async def run(self, on_tick: TickSink, on_status: StatusSink) -> None:
        on_status(CONNECTED, f"replaying the market from {self.start.isoformat()} at {self.speed:g}x")
        while True:
            now = self.now()
            for ticker, tape in list(self._tapes.items()):
                if tape.at >= len(tape.ticks) and tape.until <= now + CHUNK / 7:
                    await asyncio.to_thread(self._extend, ticker, tape)
                while tape.at < len(tape.ticks) and tape.ticks[tape.at].at <= now:
                    if tape.ticks[tape.at].at > tape.after:
                        on_tick(tape.ticks[tape.at])
                    tape.at += 1
            await asyncio.sleep(self.interval_s)
