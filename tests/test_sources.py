"""The three market sources pass one contract; each also has tests of its own."""

from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kurtosis

from market_data.csv_source import CsvSource
from market_data.massive_source import MassiveSource
from market_data.source import GROUPED_COLUMNS, UnknownTickerError
from market_data.synthetic import SyntheticMarket
from tests.fake_massive import FakeMassive

NOW = datetime(2025, 11, 1, tzinfo=timezone.utc)


@pytest.fixture(params=["synthetic", "csv", "massive"])
def source_case(request: pytest.FixtureRequest, binance_dir: Path):
    """(source, a known ticker, a day with data, a range end)"""
    if request.param == "synthetic":
        market = SyntheticMarket(seed=3, n_coins=40, now=NOW)
        yield market, market.list_tickers()[0].ticker, date(2025, 10, 1), NOW
    elif request.param == "csv":
        yield CsvSource(binance_dir), "X:BTCUSDT", date(2024, 12, 30), datetime(2024, 12, 31, tzinfo=timezone.utc)
    else:
        market = SyntheticMarket(seed=3, n_coins=40, now=NOW)
        with FakeMassive(market) as fake:
            yield MassiveSource("test-key", fake.base), market.list_tickers()[0].ticker, date(2025, 10, 1), NOW


def _assert_candles(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> None:
    assert list(frame.columns) == ["timestamp", "open", "high", "low", "close", "volume", "vwap"]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["timestamp"].is_monotonic_increasing and frame["timestamp"].is_unique
    assert (frame["timestamp"] >= start).all() and (frame["timestamp"] <= end).all()
    assert (frame[["open", "high", "low", "close"]] > 0).all().all() and (frame["volume"] >= 0).all()
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()


def test_source_contract(source_case) -> None:
    source, ticker, day, end = source_case
    tickers = source.list_tickers()
    assert len(tickers) >= 10 and ticker in {t.ticker for t in tickers}
    assert all(t.ticker.startswith("X:") and t.name for t in tickers)
    end_ts = pd.Timestamp(end)
    for timeframe, days in (("1d", 200), ("1w", 400), ("1m", 800)):
        start = end_ts - pd.Timedelta(days=days)
        frame = source.aggregates(ticker, timeframe, start.to_pydatetime(), end)
        assert len(frame) > 5, timeframe
        _assert_candles(frame, start, end_ts)
    if source.name != "csv":  # the Binance export has daily candles only
        start = end_ts - pd.Timedelta(days=20)
        for timeframe, n in (("1h", 480), ("4h", 120)):
            frame = source.aggregates(ticker, timeframe, start.to_pydatetime(), end)
            assert abs(len(frame) - n) <= 1
            _assert_candles(frame, start, end_ts)
    grouped = source.grouped_daily(day)
    assert list(grouped.columns) == GROUPED_COLUMNS and len(grouped) >= 10
    assert set(grouped["ticker"]) <= {t.ticker for t in tickers}
    assert (grouped["timestamp"] == pd.Timestamp(day, tz="UTC")).all()
    with pytest.raises(UnknownTickerError, match="X:NOPEUSD"):
        source.aggregates("X:NOPEUSD", "1d", (end_ts - pd.Timedelta(days=5)).to_pydatetime(), end)


# ---- synthetic -----------------------------------------------------------------------------

def test_synthetic_market_has_the_stylised_facts() -> None:
    market = SyntheticMarket(seed=11, n_coins=60, now=NOW)
    tickers = [t.ticker for t in market.list_tickers()]
    kurts, acf_abs, vol_volume = [], [], []
    for ticker in tickers[:12]:
        hourly = market.aggregates(ticker, "1h", datetime(2024, 11, 1, tzinfo=timezone.utc), NOW)
        r = np.diff(np.log(hourly["close"].to_numpy()))
        kurts.append(kurtosis(r, fisher=False))
        a = np.abs(r)
        acf_abs.append(np.corrcoef(a[1:], a[:-1])[0, 1])
        daily = market.aggregates(ticker, "1d", datetime(2024, 11, 1, tzinfo=timezone.utc), NOW)
        rng = np.log(daily["high"] / daily["low"])
        vol_volume.append(np.corrcoef(rng, np.log(daily["volume"] * daily["vwap"]))[0, 1])
    assert np.median(kurts) > 3  # fat tails
    assert min(acf_abs) > 0.02  # volatility clustering
    assert np.median(vol_volume) > 0.2  # volume rises with volatility
    closes = [market.aggregates(t, "1d", datetime(2025, 10, 1, tzinfo=timezone.utc), NOW)["close"].iloc[-1]
              for t in tickers]
    assert min(closes) < 1e-3 and max(closes) > 1e3  # prices span many decades
    listings = [market.aggregates(t, "1m", datetime(2019, 1, 1, tzinfo=timezone.utc), NOW)["timestamp"].iloc[0]
                for t in tickers[:20]]
    assert len(set(listings)) > 5  # listings of different ages
    # a common market factor: daily returns of different coins are positively correlated
    a, b = (np.diff(np.log(market.aggregates(t, "1d", datetime(2024, 1, 1, tzinfo=timezone.utc), NOW)
                           .set_index("timestamp")["close"])) for t in tickers[:2])
    n = min(len(a), len(b))
    assert np.corrcoef(a[-n:], b[-n:])[0, 1] > 0.1


def test_synthetic_is_deterministic_and_incremental_fetches_match() -> None:
    one, two = SyntheticMarket(seed=5, n_coins=10, now=NOW), SyntheticMarket(seed=5, n_coins=10, now=NOW)
    other = SyntheticMarket(seed=6, n_coins=10, now=NOW)
    t = one.list_tickers()[3].ticker
    assert [x.ticker for x in one.list_tickers()] == [x.ticker for x in two.list_tickers()]
    full = one.aggregates(t, "1h", datetime(2025, 1, 1, tzinfo=timezone.utc), NOW)
    pd.testing.assert_frame_equal(full, two.aggregates(t, "1h", datetime(2025, 1, 1, tzinfo=timezone.utc), NOW))
    assert not full["close"].equals(other.aggregates(other.list_tickers()[3].ticker, "1h",
                                                     datetime(2025, 1, 1, tzinfo=timezone.utc), NOW)["close"])
    part = two.aggregates(t, "1h", datetime(2025, 1, 1, tzinfo=timezone.utc), datetime(2025, 3, 1, tzinfo=timezone.utc))
    pd.testing.assert_frame_equal(part, full.iloc[: len(part)])


# ---- csv -----------------------------------------------------------------------------------

def test_csv_reads_the_binance_export(binance_dir: Path) -> None:
    source = CsvSource(binance_dir)
    assert len(source.list_tickers()) == len(list(binance_dir.glob("*.csv")))
    btc = source.aggregates("X:BTCUSDT", "1d", datetime(2024, 12, 30, tzinfo=timezone.utc),
                            datetime(2024, 12, 30, tzinfo=timezone.utc))
    raw = pd.read_csv(binance_dir / "BTCUSDT.csv")
    row = raw[raw["open_time"].str.startswith("2024-12-30")].iloc[0]
    assert btc["close"].item() == row["close"]
    assert btc["vwap"].item() == pytest.approx(row["quote_asset_volume"] / row["volume"])
    week = source.aggregates("X:BTCUSDT", "1w", datetime(2024, 12, 16, tzinfo=timezone.utc),
                             datetime(2024, 12, 22, 23, tzinfo=timezone.utc))  # the week as known at its end
    days = raw[(raw["open_time"] >= "2024-12-16") & (raw["open_time"] < "2024-12-23")]
    assert week["high"].item() == days["high"].max() and week["volume"].item() == pytest.approx(days["volume"].sum())
    assert source.aggregates("X:BTCUSDT", "1h", datetime(2024, 12, 1, tzinfo=timezone.utc), NOW).empty


def test_csv_plain_layouts_and_per_timeframe_files(tmp_path: Path) -> None:
    stamps = pd.date_range("2024-01-01", periods=48, freq="1h", tz="UTC")
    close = np.linspace(1, 2, 48)
    plain = pd.DataFrame({"timestamp": stamps.as_unit("ms").asi8, "open": close, "high": close + 0.1,
                          "low": close - 0.1, "close": close, "volume": 1.0})
    plain.to_csv(tmp_path / "FOOUSD_1h.csv", index=False)
    iso = pd.DataFrame({"date": stamps.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": close, "high": close + 0.1,
                        "low": close - 0.1, "close": close, "volume": 2.0, "vwap": close})
    iso.to_csv(tmp_path / "BAREUR.csv", index=False)
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    source = CsvSource(tmp_path)
    assert {t.ticker: (t.base_currency, t.quote_currency) for t in source.list_tickers()} == {
        "X:BAREUR": ("BAR", "EUR"), "X:FOOUSD": ("FOO", "USD"), "X:NOTES": ("NOTES", None)}
    after = (stamps[-1] + pd.Timedelta(hours=1)).to_pydatetime()  # once the last hour has closed
    day = source.aggregates("X:FOOUSD", "1d", stamps[0].to_pydatetime(), after)
    assert len(day) == 2 and day["open"].iloc[0] == close[0] and day["close"].iloc[1] == close[-1]
    assert len(source.aggregates("X:BAREUR", "4h", stamps[0].to_pydatetime(), after)) == 12
    with pytest.raises(ValueError, match="notes.csv"):
        source.aggregates("X:NOTES", "1d", stamps[0].to_pydatetime(), stamps[-1].to_pydatetime())
