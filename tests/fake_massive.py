"""A loopback HTTP server that answers like the Massive (Polygon.io) REST API.

It serves the documented JSON shapes — reference tickers and aggregates with `next_url`
pagination, grouped daily aggregates — from a seeded synthetic market, and can inject faults
(429 with Retry-After, 502), dirty rows (zero prices, duplicated bars), tickers that always fail,
and an invalid key, so the real `massive` client is driven through every path.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlencode, urlparse

import pandas as pd

from market_data.source import UnknownTickerError, empty_candles
from market_data.synthetic import SyntheticMarket
from tests.loopback import LoopbackServer, send_json

TIMESPANS = {("1", "hour"): "1h", ("4", "hour"): "4h", ("1", "day"): "1d", ("1", "week"): "1w", ("1", "month"): "1m"}


@dataclass(frozen=True)
class Faults:
    """What goes wrong on purpose: a share of requests answered 429 or 5xx (Retry-After on a
    429), and bad bars mixed into answers (`dirty`), drawn from a seeded generator."""

    rate: float = 0.0
    dirty: bool = False
    seed: int = 0
    retry_after: str = "0"


class FakeMassive(LoopbackServer):
    def __init__(self, market: SyntheticMarket, api_key: str = "test-key", faults: Faults = Faults(),
                 page_size: int = 700, ticker_page_size: int = 7) -> None:
        self.market = market
        self.api_key = api_key
        self.fault_rate = faults.rate
        self.dirty = faults.dirty
        self.page_size = page_size
        self.ticker_page_size = ticker_page_size
        self.retry_after = faults.retry_after
        self.always_fail: set[str] = set()  # tickers whose aggregates always answer 502
        self.delisted: set[str] = set()
        self.forced: list[tuple[int, dict[str, str]]] = []  # (status, headers) answered before anything else
        self.requests = 0
        self.faults = 0
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()
        self._start_server()

    # -- answers ---------------------------------------------------------------------------
    def _tickers(self, query: dict[str, str]) -> dict:
        rows = [t for t in self.market.list_tickers() if t.ticker not in self.delisted]
        if "ticker" in query:
            rows = [t for t in rows if t.ticker == query["ticker"]]
        offset = int(query.get("cursor", 0))
        limit = min(int(query.get("limit", 100)), self.ticker_page_size)
        page = rows[offset: offset + limit]
        body = {
            "results": [
                {"ticker": t.ticker, "name": t.name, "market": "crypto", "locale": "global", "active": True,
                 "currency_symbol": t.quote_currency, "currency_name": "United States Dollar",
                 "base_currency_symbol": t.base_currency, "base_currency_name": t.name.split(" - ")[0],
                 "last_updated_utc": "2025-01-01T00:00:00Z"}
                for t in page
            ],
            "status": "OK", "request_id": uuid.uuid4().hex, "count": len(page),
        }
        if offset + limit < len(rows):
            body["next_url"] = f"{self.base}/v3/reference/tickers?" + urlencode({**query, "cursor": offset + limit})
        return body

    @staticmethod
    def _moment(value: str) -> pd.Timestamp:
        return pd.Timestamp(int(value), unit="ms", tz="UTC") if value.isdigit() else pd.Timestamp(value, tz="UTC")

    def _bars(self, candles: pd.DataFrame) -> list[dict]:
        bars = [
            {"v": r.volume, "vw": r.vwap, "o": r.open, "c": r.close, "h": r.high, "l": r.low,
             "t": int(r.timestamp.timestamp() * 1000), "n": 100}
            for r in candles.itertuples()
        ]
        if self.dirty and bars:
            with self._lock:
                picks = [self._rng.randrange(len(bars)) for _ in range(max(1, len(bars) // 50))]
            for i in sorted(set(picks), reverse=True):
                bars.insert(i, dict(bars[i]))  # an exact duplicate of a bar
                bars.insert(i, {**bars[i], "o": 0.0, "t": bars[i]["t"] - 1000})  # a zero-price bar, 1 s earlier
        return bars

    def _aggs(self, ticker: str, mult: str, span: str, start: str, end: str, query: dict[str, str]) -> tuple[int, dict]:
        timeframe = TIMESPANS.get((mult, span))
        if timeframe is None:
            return 400, {"status": "ERROR", "error": f"bad timespan {mult}/{span}"}
        try:
            candles = self.market.aggregates(ticker, timeframe, self._moment(start), self._moment(end))
        except UnknownTickerError:  # the API answers OK with no results
            candles = empty_candles()
        offset = int(query.get("cursor", 0))
        page = candles.iloc[offset: offset + self.page_size]
        bars = self._bars(page)
        body = {"ticker": ticker, "queryCount": len(bars), "resultsCount": len(bars), "adjusted": True,
                "status": "OK", "request_id": uuid.uuid4().hex, "count": len(bars)}
        if bars:
            body["results"] = bars
        if offset + self.page_size < len(candles):
            body["next_url"] = (f"{self.base}/v2/aggs/ticker/{ticker}/range/{mult}/{span}/{start}/{end}?"
                                + urlencode({**query, "cursor": offset + self.page_size}))
        return 200, body

    def _grouped(self, day: str) -> dict:
        grouped = self.market.grouped_daily(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc).date())
        grouped = grouped[~grouped["ticker"].isin(self.delisted)]
        results = [
            {"T": r.ticker, "v": r.volume, "vw": r.vwap, "o": r.open, "c": r.close, "h": r.high, "l": r.low,
             "t": int(r.timestamp.timestamp() * 1000), "n": 100}
            for r in grouped.itertuples()
        ]
        return {"queryCount": len(results), "resultsCount": len(results), "adjusted": True, "results": results,
                "status": "OK", "request_id": uuid.uuid4().hex, "count": len(results)}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                send_json(self, status, body, headers)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                with fake._lock:
                    fake.requests += 1
                    forced = fake.forced.pop(0) if fake.forced else None
                    fault = forced is None and fake._rng.random() < fake.fault_rate
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return self._send(401, {"status": "ERROR", "request_id": uuid.uuid4().hex,
                                            "error": "Unknown API Key"})
                if forced is not None:
                    return self._send(forced[0], {"status": "ERROR", "error": "forced"}, forced[1])
                if fault:
                    with fake._lock:
                        fake.faults += 1
                        is_429 = fake._rng.random() < 0.5
                    if is_429:
                        return self._send(429, {"status": "ERROR", "error": "You've exceeded the maximum requests per minute"},
                                          {"Retry-After": fake.retry_after})
                    return self._send(502, {"status": "ERROR", "error": "Bad Gateway"})
                parts = url.path.strip("/").split("/")
                if url.path == "/v3/reference/tickers":
                    return self._send(200, fake._tickers(query))
                if parts[:3] == ["v2", "aggs", "ticker"] and len(parts) == 9:
                    ticker = parts[3]
                    if ticker in fake.always_fail:
                        return self._send(502, {"status": "ERROR", "error": "Bad Gateway"})
                    status, body = fake._aggs(ticker, parts[5], parts[6], parts[7], parts[8], query)
                    return self._send(status, body)
                if parts[:6] == ["v2", "aggs", "grouped", "locale", "global", "market"] and len(parts) == 8:
                    return self._send(200, fake._grouped(parts[7]))
                return self._send(404, {"status": "NOT_FOUND", "message": f"no route {url.path}"})

        return Handler
