"""The real `massive` client against the loopback API: pagination, faults, dirty rows, auth."""

import time
from datetime import date, datetime, timezone

import pandas as pd
import pytest

from market_data.massive_source import MassiveSource
from market_data.source import AuthenticationError, MarketDataUnavailable, RateLimited, UnknownTickerError
from market_data.synthetic import SyntheticMarket
from tests.fake_massive import FakeMassive, Faults

NOW = datetime(2025, 11, 1, tzinfo=timezone.utc)
START = datetime(2025, 8, 1, tzinfo=timezone.utc)


@pytest.fixture
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=2, n_coins=30, now=NOW)


def test_pagination_of_tickers_and_aggregates(market: SyntheticMarket) -> None:
    with FakeMassive(market, page_size=300, ticker_page_size=7) as fake:
        source = MassiveSource("test-key", fake.base)
        tickers = source.list_tickers()
        assert [t.ticker for t in tickers] == [t.ticker for t in market.list_tickers()]  # 5 pages of 7
        assert tickers[0].quote_currency == "USD" and tickers[0].base_currency
        ticker = tickers[0].ticker
        before = fake.requests
        candles = source.aggregates(ticker, "1h", START, NOW)
        assert fake.requests - before >= 7  # ~2200 hourly candles in pages of 300
        pd.testing.assert_frame_equal(candles, market.aggregates(ticker, "1h", START, NOW))


def test_faults_are_retried_and_dirty_rows_cleaned(market: SyntheticMarket) -> None:
    with FakeMassive(market, faults=Faults(rate=0.3, dirty=True, seed=4), page_size=400) as fake:
        source = MassiveSource("test-key", fake.base, backoff_factor=0.01)
        ticker = market.list_tickers()[1].ticker
        candles = source.aggregates(ticker, "4h", START, NOW)
        grouped = source.grouped_daily(date(2025, 10, 1))
        assert fake.faults > 0
    pd.testing.assert_frame_equal(candles, market.aggregates(ticker, "4h", START, NOW))
    expected = market.grouped_daily(date(2025, 10, 1))
    pd.testing.assert_frame_equal(grouped.reset_index(drop=True), expected.sort_values("ticker").reset_index(drop=True))


def test_retry_after_is_honoured(market: SyntheticMarket) -> None:
    with FakeMassive(market) as fake:
        fake.forced = [(429, {"Retry-After": "1"})]
        source = MassiveSource("test-key", fake.base, backoff_factor=0.0)
        started = time.monotonic()
        assert source.list_tickers()
        assert time.monotonic() - started >= 1.0


def test_persistent_failures_give_typed_errors(market: SyntheticMarket) -> None:
    with FakeMassive(market) as fake:
        source = MassiveSource("test-key", fake.base, retries=2, backoff_factor=0.0)
        fake.forced = [(429, {"Retry-After": "0"})] * 3
        with pytest.raises(RateLimited, match="429"):
            source.list_tickers()
        fake.forced = [(502, {})] * 3
        with pytest.raises(MarketDataUnavailable, match="502"):
            source.list_tickers()
        with pytest.raises(UnknownTickerError, match="X:NOSUCHUSD"):
            source.aggregates("X:NOSUCHUSD", "1d", START, NOW)
        with pytest.raises(AuthenticationError, match="MASSIVE_API_KEY"):
            MassiveSource("wrong-key", fake.base).list_tickers()
    with pytest.raises(AuthenticationError, match="MASSIVE_API_KEY"):
        MassiveSource(None, "http://127.0.0.1:9")
    with pytest.raises(MarketDataUnavailable, match="unable to connect"):
        MassiveSource("k", "http://127.0.0.1:9", retries=1, backoff_factor=0.0).list_tickers()


def test_every_request_spends_the_budget(market: SyntheticMarket) -> None:
    calls = []
    with FakeMassive(market, ticker_page_size=10) as fake:
        source = MassiveSource("test-key", fake.base, throttle=lambda: calls.append(1))
        source.list_tickers()
        assert len(calls) == fake.requests == 3
