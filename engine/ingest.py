"""Ingestion on Ray: one task per symbol (all its timeframes), a bounded number in flight, all
sharing one requests-per-minute budget held by an actor, so a cluster never exceeds the market
data plan's rate however many workers it has. `market_data.update` is what each task runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from config import Settings
from market_data.budget import RequestBudget
from market_data.factory import make_source
from market_data.source import MarketSource
from market_data.update import DEFAULT_MAX_IN_FLIGHT, DEFAULT_REQUESTS_PER_MINUTE, PairResult, update_symbol
from storage.lake import Lake


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
                        budget: Any, history_as_of: datetime | None) -> list[PairResult]:
    _THROTTLE.actor = budget
    return update_symbol(Lake(settings.data_dir), _worker_source(settings), ticker, timeframes, as_of, history_as_of)


def update_with_ray(settings: Settings, tickers: Iterable[str], timeframes: Sequence[str], as_of: datetime,
                    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                    requests_per_minute: float = DEFAULT_REQUESTS_PER_MINUTE,
                    on_result: Callable[[PairResult], None] | None = None,
                    history_as_of: datetime | None = None) -> list[PairResult]:
    """One Ray task per symbol (all its timeframes), at most `max_in_flight` at once, all sharing
    one requests-per-minute budget held by an actor; `history_as_of` as in `update_pair`."""
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
        pending.append(task.remote(settings, ticker, list(timeframes), as_of, budget, history_as_of))
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        collect(done)
    ray.kill(budget)
    return results
