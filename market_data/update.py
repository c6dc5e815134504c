"""Incremental updates of the lake: fetch only what is newer, clean, append, trim; fanned out on Ray.

For each symbol and timeframe the lake is asked for its last candle; the source is asked for
everything from that candle (again, as it may have been incomplete) to `as_of`. A lake without
the pair starts at the retention horizon. Every pair is written atomically on its own, so a
killed run loses nothing it wrote and a re-run fetches only what is still missing. A pair that
fails is reported and skipped; the others finish.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import pandas as pd

from config import Settings
from market_data.budget import RequestBudget
from market_data.factory import make_source
from market_data.source import MarketSource, utc
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


def fetch_window(lake: Lake, ticker: str, timeframe: str, as_of: datetime) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of what to fetch: from the last stored candle (inclusive) or the retention horizon."""
    end = utc(as_of)
    horizon = end - timedelta(days=RETENTION_DAYS[timeframe])
    last = lake.last_timestamp(ticker, timeframe)
    return (max(last, horizon) if last is not None else horizon), end


def update_pair(lake: Lake, source: MarketSource, ticker: str, timeframe: str, as_of: datetime) -> PairResult:
    started = time.perf_counter()
    try:
        start, end = fetch_window(lake, ticker, timeframe, as_of)
        candles = source.aggregates(ticker, timeframe, start.to_pydatetime(), end.to_pydatetime())
        # a candle that opens at `as_of` or later was not known at `as_of`
        candles = candles[candles["timestamp"] < end]
        if candles.empty:
            return PairResult(ticker, timeframe, "empty", seconds=time.perf_counter() - started,
                              message=f"no candles from {start} to {end}")
        before = lake.read(ticker, timeframe, columns=["timestamp"])["timestamp"]
        stored = lake.append(ticker, timeframe, candles, as_of=as_of)
        added = int((~stored["timestamp"].isin(before)).sum())
        return PairResult(ticker, timeframe, "ok", fetched=len(candles), added=added, stored=len(stored),
                          seconds=time.perf_counter() - started)
    except Exception as exc:
        log.warning("update %s %s failed: %s", ticker, timeframe, exc)
        return PairResult(ticker, timeframe, "failed", seconds=time.perf_counter() - started,
                          message=f"{type(exc).__name__}: {exc}")


def update_symbol(lake: Lake, source: MarketSource, ticker: str, timeframes: Sequence[str],
                  as_of: datetime) -> list[PairResult]:
    return [update_pair(lake, source, ticker, tf, as_of) for tf in timeframes]


def update_local(settings: Settings, tickers: Iterable[str], timeframes: Sequence[str], as_of: datetime,
                 requests_per_minute: float = DEFAULT_REQUESTS_PER_MINUTE) -> list[PairResult]:
    """The plain single-process loop (the baseline the Ray path is measured against)."""
    budget = RequestBudget(requests_per_minute)
    source = make_source(settings, throttle=budget.wait)
    lake = Lake(settings.data_dir)
    return [r for t in tickers for r in update_symbol(lake, source, t, timeframes, as_of)]


# ---- Ray ----------------------------------------------------------------------------------


class _Throttle:
    """The per-worker throttle handed to a cached source; points at the current job's budget actor."""

    actor: Any = None

    def __call__(self) -> None:
        if self.actor is not None:
            import ray

            delay = ray.get(self.actor.reserve.remote())
            if delay > 0:
                time.sleep(delay)


_THROTTLE = _Throttle()


@lru_cache(maxsize=4)
def _worker_source(settings: Settings) -> MarketSource:
    # Ray reuses worker processes; building the source once per worker keeps its caches warm.
    return make_source(settings, throttle=_THROTTLE)


def _update_symbol_task(settings: Settings, ticker: str, timeframes: Sequence[str], as_of: datetime,
                        budget: Any) -> list[PairResult]:
    _THROTTLE.actor = budget
    return update_symbol(Lake(settings.data_dir), _worker_source(settings), ticker, timeframes, as_of)


def update_with_ray(settings: Settings, tickers: Iterable[str], timeframes: Sequence[str], as_of: datetime,
                    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                    requests_per_minute: float = DEFAULT_REQUESTS_PER_MINUTE,
                    on_result: Callable[[PairResult], None] | None = None) -> list[PairResult]:
    """One Ray task per symbol (all its timeframes), at most `max_in_flight` at once, all sharing
    one requests-per-minute budget held by an actor."""
    import ray

    budget = ray.remote(num_cpus=0)(RequestBudget).remote(requests_per_minute)
    task = ray.remote(num_cpus=0.25, max_retries=0)(_update_symbol_task)
    pending: list[Any] = []
    results: list[PairResult] = []

    def collect(done: list[Any]) -> None:
        for ref in done:
            for result in ray.get(ref):
                results.append(result)
                if on_result:
                    on_result(result)

    for ticker in tickers:
        if len(pending) >= max_in_flight:
            done, pending = ray.wait(pending, num_returns=1)
            collect(done)
        pending.append(task.remote(settings, ticker, list(timeframes), as_of, budget))
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        collect(done)
    ray.kill(budget)
    return results
