"""A requests-per-minute budget shared by every worker that calls the market-data API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RequestBudget:
    """Token bucket: `per_minute` requests a minute on average, bursts up to `burst`.

    `reserve()` books one request and returns how long the caller must wait before sending it,
    so the bucket can live in a Ray actor while callers sleep in their own processes.
    """

    def __init__(self, per_minute: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError(f"requests per minute must be positive, got {per_minute}")
        self.rate = per_minute / 60.0
        self.capacity = burst if burst is not None else max(1.0, per_minute / 60.0)
        self._tokens = self.capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            time.sleep(delay)
