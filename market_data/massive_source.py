"""`MARKET_SOURCE=massive`: the Massive (formerly Polygon.io) REST API through the official client.

The official `massive.RESTClient` does the requests and follows `next_url` pagination. Two things
are ours, through the client's own hooks:
- retries: a urllib3 `Retry` policy that retries 429 and 5xx with exponential backoff, honours
  `Retry-After`, and, once retries are exhausted, raises our typed errors (the client would only
  say "BadResponse" with the body, losing the status code);
- a request budget: every HTTP request first takes a token from `throttle`, so many workers
  together stay inside the plan's requests-per-minute limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Self

import pandas as pd
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from market_data.cleaning import clean_candles
from market_data.source import (
    GROUPED_COLUMNS,
    AuthenticationError,
    MarketDataError,
    MarketDataUnavailable,
    RateLimited,
    TickerInfo,
    UnknownTickerError,
    utc,
)
from market_data.timeframes import spec

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 500, 502, 503, 504)


class ApiRetry(Retry):
    """urllib3 retry policy that turns final failures into the source's typed errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("status_forcelist", RETRY_STATUSES)
        kwargs.setdefault("allowed_methods", frozenset({"GET"}))
        kwargs.setdefault("respect_retry_after_header", True)
        super().__init__(*args, **kwargs)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code in (401, 403):
            raise AuthenticationError(
                f"the market-data API refused the key (HTTP {status_code}); set MASSIVE_API_KEY to a valid key"
            )
        return super().is_retry(method, status_code, has_retry_after)

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> Self:
        if response is not None and response.status in RETRY_STATUSES:
            log.warning("market-data API answered %s for %s; retrying", response.status, url)
        try:
            return super().increment(method, url, response, error, _pool, _stacktrace)
        except MaxRetryError as exc:
            where = (url or "").split("?")[0]
            if response is not None and response.status == 429:
                after = response.headers.get("Retry-After")
                raise RateLimited(
                    f"market-data API rate limit (HTTP 429) persisted after {len(self.history) + 1} tries on {where}",
                    retry_after_s=float(after) if after and after.replace(".", "", 1).isdigit() else None,
                ) from exc
            status = f"HTTP {response.status}" if response is not None else f"{type(error).__name__}: {error}"
            raise MarketDataUnavailable(
                f"unable to connect to market data: {status} persisted after retries on {where}"
            ) from exc


class MassiveSource:
    name = "massive"

    def __init__(self, api_key: str | None, base: str = "https://api.massive.com", *, retries: int = 5,
                 backoff_factor: float = 0.5, backoff_max: float = 60.0, timeout_s: float = 30.0,
                 throttle: Callable[[], None] | None = None) -> None:
        from massive import RESTClient

        if not api_key:
            raise AuthenticationError("MARKET_SOURCE=massive needs MASSIVE_API_KEY (or POLYGON_API_KEY)")
        retry = ApiRetry(total=retries, connect=retries, read=retries, status=retries,
                         backoff_factor=backoff_factor, backoff_max=backoff_max)
        self._client = RESTClient(api_key=api_key, base=base.rstrip("/"), connect_timeout=timeout_s,
                                  read_timeout=timeout_s, retries=retries, connection_pool_kw={"retries": retry})
        self.base = base
        if throttle is not None:
            pool = self._client.client
            request = pool.request

            def throttled(*args: Any, **kwargs: Any) -> Any:
                throttle()
                return request(*args, **kwargs)

            pool.request = throttled

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from massive.exceptions import BadResponse

        try:
            return fn()
        except MarketDataError:
            raise
        except BadResponse as exc:
            raise MarketDataError(f"market-data API refused {what}: {str(exc)[:300]}") from exc
        except MaxRetryError as exc:  # pragma: no cover - ApiRetry converts these
            raise MarketDataUnavailable(f"unable to connect to market data for {what}: {exc.reason}") from exc

    def list_tickers(self) -> list[TickerInfo]:
        rows = self._call("the crypto ticker list", lambda: list(
            self._client.list_tickers(market="crypto", active=True, limit=1000)
        ))
        return [
            TickerInfo(ticker=t.ticker, name=t.name or t.ticker, base_currency=t.base_currency_symbol,
                       quote_currency=t.currency_symbol)
            for t in rows
            if t.ticker
        ]

    def aggregates(self, ticker: str, timeframe: str, start: datetime, end: datetime) -> pd.DataFrame:
        tf = spec(timeframe)
        start_ms, end_ms = int(utc(start).timestamp() * 1000), int(utc(end).timestamp() * 1000)
        what = f"{ticker} {timeframe} aggregates"
        bars = self._call(what, lambda: list(self._client.list_aggs(
            ticker, tf.multiplier, tf.timespan, start_ms, end_ms, adjusted=True, sort="asc", limit=50000
        )))
        if not bars:
            known = self._call(f"ticker {ticker}", lambda: list(self._client.list_tickers(ticker=ticker, market="crypto",
                                                                                          limit=1)))
            if not known:
                raise UnknownTickerError(f"the market-data API does not know ticker {ticker!r}")
        raw = pd.DataFrame(
            [(b.timestamp, b.open, b.high, b.low, b.close, b.volume, b.vwap) for b in bars],
            columns=["t", "o", "h", "l", "c", "v", "vw"],
        )
        candles, _ = clean_candles(raw, label=what)
        return candles[(candles["timestamp"] >= utc(start)) & (candles["timestamp"] <= utc(end))].reset_index(drop=True)

    def grouped_daily(self, day: date) -> pd.DataFrame:
        rows = self._call(f"grouped daily aggregates of {day}", lambda: self._client.get_grouped_daily_aggs(
            day.isoformat(), adjusted=True, locale="global", market_type="crypto"
        ))
        raw = pd.DataFrame(
            [(r.ticker, r.timestamp, r.open, r.high, r.low, r.close, r.volume, r.vwap) for r in rows or []],
            columns=["ticker", "t", "o", "h", "l", "c", "v", "vw"],
        )
        if raw.empty:
            return pd.DataFrame(columns=GROUPED_COLUMNS)
        cleaned = []
        for ticker, group in raw.groupby("ticker", sort=True):
            candles, _ = clean_candles(group.drop(columns="ticker"), label=f"{ticker} grouped {day}")
            cleaned.append(candles.assign(ticker=ticker))
        return pd.concat(cleaned, ignore_index=True)[GROUPED_COLUMNS]
