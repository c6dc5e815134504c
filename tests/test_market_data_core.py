"""Timeframes, aggregation, cleaning and the request budget: pure functions, no services."""

import logging

import numpy as np
import pandas as pd
import pytest

from market_data.budget import RequestBudget
from market_data.cleaning import clean_candles
from market_data.timeframes import aggregate, bucket_start, spec


def test_timeframes_map_to_api_multiplier_and_timespan() -> None:
    assert [(spec(tf).multiplier, spec(tf).timespan) for tf in ("1h", "4h", "1d", "1w", "1m")] == [
        (1, "hour"), (4, "hour"), (1, "day"), (1, "week"), (1, "month")]
    with pytest.raises(ValueError, match="5m"):
        spec("5m")


def test_bucket_starts() -> None:
    stamps = pd.Series(pd.to_datetime(["2024-12-31 17:30", "2025-01-05 23:00", "2025-02-28 01:00"], utc=True))
    assert list(bucket_start(stamps, "4h").dt.hour) == [16, 20, 0]
    assert [str(d.date()) for d in bucket_start(stamps, "1w")] == ["2024-12-30", "2024-12-30", "2025-02-24"]
    assert [str(d.date()) for d in bucket_start(stamps, "1m")] == ["2024-12-01", "2025-01-01", "2025-02-01"]


def test_aggregate_ohlcv_and_vwap() -> None:
    hourly = pd.DataFrame({
        "timestamp": pd.date_range("2024-01-01", periods=8, freq="1h", tz="UTC"),
        "open": [1, 2, 3, 4, 5, 6, 7, 8.0], "high": [2, 3, 9, 5, 6, 7, 8, 9.0],
        "low": [0.5, 1, 2, 3, 4, 1, 6, 7.0], "close": [2, 3, 4, 5, 6, 7, 8, 9.0],
        "volume": [1, 1, 1, 1, 2, 2, 2, 2.0], "vwap": [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5],
    })
    out = aggregate(hourly, "4h")
    assert out[["open", "high", "low", "close", "volume"]].values.tolist() == [[1, 9, 0.5, 5, 4], [5, 9, 1, 9, 8]]
    assert out["vwap"].tolist() == pytest.approx([3.0, 7.0])


def test_cleaning_rules_and_their_counts(caplog: pytest.LogCaptureFixture) -> None:
    raw = pd.DataFrame({
        "t": [3_600_000, 0, 7_200_000, 7_200_000, 10_800_000, 14_400_000, 18_000_000],
        "o": [10, 10, 10, 11, 0, 10, 10], "h": [12, 12, 12, 12, 12, 9, 12], "l": [9, 9, 9, 9, 9, 8, 9],
        "c": [11, 11, 11, 11.5, 11, 9, 11], "v": [5, 5, 5, 6, 5, 5, -1], "vw": [10.5, 10.5, 10.5, 11, 10, 9, 50],
    })
    with caplog.at_level(logging.INFO, logger="market_data.cleaning"):
        clean, report = clean_candles(raw, label="X:TEST 1h")
    assert clean["timestamp"].is_monotonic_increasing and str(clean["timestamp"].dt.tz) == "UTC"
    assert clean["timestamp"].dt.hour.tolist() == [0, 1, 2]
    assert clean.loc[2, "open"] == 11  # the duplicate kept the last row
    assert report.dropped == {"duplicate timestamps": 1, "non-positive price": 1, "negative volume": 1,
                              "high/low not bounding open/close": 1}
    assert report.rows_out == 3
    assert "X:TEST 1h" in caplog.text and "non-positive price" in caplog.text


def test_cleaning_fills_gaps_and_forgets_bad_vwap() -> None:
    raw = pd.DataFrame({"timestamp": ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"], "open": [1.0, None],
                        "high": [2.0, 2.0], "low": [0.5, 0.5], "close": [1.5, 1.5], "volume": [1.0, 1.0],
                        "vwap": [5.0, 1.0]})
    clean, _ = clean_candles(raw)
    assert clean["open"].tolist() == [1.0, 1.0] and np.isnan(clean.loc[0, "vwap"])


def test_request_budget_spaces_requests() -> None:
    now = [0.0]
    budget = RequestBudget(per_minute=60, burst=2, clock=lambda: now[0])
    assert [budget.reserve(), budget.reserve()] == [0.0, 0.0]
    assert budget.reserve() == pytest.approx(1.0)  # one request a second once the burst is spent
    assert budget.reserve() == pytest.approx(2.0)
    now[0] = 10.0
    assert budget.reserve() == 0.0
    with pytest.raises(ValueError):
        RequestBudget(0)
