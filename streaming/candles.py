"""The forming candle of one symbol and timeframe, built from ticks: pure, no I/O, no clock of its
own (the caller passes the time), so that the rules are tested without a socket.

A candle closes when a tick arrives in a later bucket or when the time passes its bucket's end,
whichever comes first; the next one opens at the closed close (a quiet market's candle is flat,
never missing), so the chart's last candle always continues the one before.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pandas as pd

from market_data.stream import Tick
from market_data.timeframes import bucket_start, spec

MAX_CLOSED = 3  # closed candles one call returns at most (see `FormingCandle._roll_to`)


@dataclass(frozen=True)
class Candle:
    opened_at: datetime  # aware UTC: the bucket's open time
    open: float
    high: float
    low: float
    close: float
    volume: float

    def row(self) -> dict[str, Any]:
        """The candle as the API answers candles (JSON edge)."""
        return {"timestamp": pd.Timestamp(self.opened_at).isoformat(), "open": self.open, "high": self.high,
                "low": self.low, "close": self.close, "volume": self.volume}


def bucket_of(moment: datetime, timeframe: str) -> datetime:
    """The open time of the `timeframe` candle `moment` falls in."""
    stamp = pd.Timestamp(moment).tz_convert("UTC")
    return bucket_start(pd.Series([stamp]), timeframe).iloc[0].to_pydatetime()


def closes_at(opened_at: datetime, timeframe: str) -> datetime:
    return spec(timeframe).next_open(pd.Timestamp(opened_at)).to_pydatetime()


def _bucket_before(opened_at: datetime, timeframe: str) -> datetime:
    return bucket_of(pd.Timestamp(opened_at) - pd.Timedelta(seconds=1), timeframe)


def flat(opened_at: datetime, price: float) -> Candle:
    return Candle(opened_at, price, price, price, price, 0.0)


class FormingCandle:
    """The candle now forming. `apply` and `advance` return the candles that closed on the way
    (oldest first): usually none, one when a bucket ends, several after a long silence."""

    def __init__(self, timeframe: str, current: Candle) -> None:
        spec(timeframe)  # an unknown timeframe fails here, in the caller's terms
        self.timeframe, self.current = timeframe, current
        self.changed = True  # whether `current` moved since the viewers were last sent it

    @classmethod
    def start(cls, timeframe: str, now: datetime, last_close: float, partial: Candle | None = None) -> FormingCandle:
        """Open at `now`'s bucket: from the source's partial candle of that bucket where it has one
        (a daily candle opened hours ago has a high and low already), else flat at the last close."""
        opened_at = bucket_of(now, timeframe)
        if partial is not None and partial.opened_at == opened_at:
            return cls(timeframe, partial)
        return cls(timeframe, flat(opened_at, last_close))

    def _roll_to(self, opened_at: datetime) -> list[Candle]:
        """After a long silence only the last `MAX_CLOSED` closed candles are returned: the flat
        ones before them say nothing a chart reload would not."""
        closed: list[Candle] = []
        while self.current.opened_at < opened_at:
            closed.append(self.current)
            self.current = flat(closes_at(self.current.opened_at, self.timeframe), self.current.close)
            if len(closed) > MAX_CLOSED:
                del closed[0]
                if self.current.opened_at < opened_at:  # skip straight to the bucket before `opened_at`
                    self.current = flat(_bucket_before(opened_at, self.timeframe), self.current.close)
        self.changed = self.changed or bool(closed)
        return closed

    def advance(self, now: datetime) -> list[Candle]:
        """Close what the time has closed, though no tick came."""
        return self._roll_to(bucket_of(now, self.timeframe))

    def apply(self, tick: Tick) -> list[Candle]:
        """Fold a tick in; one older than the forming candle (a late aggregate) is ignored."""
        opened_at = bucket_of(tick.at, self.timeframe)
        if opened_at < self.current.opened_at:
            return []
        closed = self._roll_to(opened_at)
        c = self.current
        self.current = replace(c, high=max(c.high, tick.high, tick.close), low=min(c.low, tick.low, tick.close),
                               close=tick.close, volume=c.volume + tick.volume)
        self.changed = True
        return closed
