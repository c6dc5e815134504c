"""Features: 150+ columns, scale-free, no lookahead, warm-up marked, serving window identical."""

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import talib

from features.build import WARMUP_COLUMN, build_features, catalogue, feature_names, latest_features
from features.indicators import directional_movement
from features.profiles import profile_for
from market_data.csv_source import CsvSource
from market_data.synthetic import SyntheticMarket

REAL = ["BTCUSDT", "PEPEUSDT", "SHIBUSDT", "XRPUSDT", "SUIUSDT"]
NOW = datetime(2025, 11, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def real_daily() -> dict[str, pd.DataFrame]:
    from tests.conftest import DAILY_DATA

    source = CsvSource(DAILY_DATA)
    return {s: source.aggregates(f"X:{s}", "1d", datetime(2018, 1, 1, tzinfo=timezone.utc), NOW) for s in REAL}


@pytest.fixture(scope="module")
def synthetic() -> dict[str, pd.DataFrame]:
    market = SyntheticMarket(seed=21, n_coins=6, now=NOW)
    out = {}
    for t in market.list_tickers()[:3]:
        out[f"{t.ticker} 1h"] = ("1h", market.aggregates(t.ticker, "1h", datetime(2025, 6, 1, tzinfo=timezone.utc), NOW))
        out[f"{t.ticker} 1w"] = ("1w", market.aggregates(t.ticker, "1w", datetime(2020, 1, 1, tzinfo=timezone.utc), NOW))
    return out


def _cases(real_daily, synthetic):
    return [(name, "1d", frame) for name, frame in real_daily.items()] + [
        (name, tf, frame) for name, (tf, frame) in synthetic.items()]


def _values(frame: pd.DataFrame, timeframe: str, rows=slice(None)) -> np.ndarray:
    return frame.loc[:, feature_names(timeframe)].iloc[rows].to_numpy(np.float64)


@pytest.mark.parametrize("timeframe", ["1h", "4h", "1d", "1w", "1m"])
def test_catalogue_has_150_distinctly_named_features(timeframe: str) -> None:
    cat = catalogue(timeframe)
    names = [f.name for f in cat]
    assert len(names) >= 150 and len(set(names)) == len(names)
    groups = {f.group for f in cat}
    assert {"overlap", "momentum", "volume", "volatility", "price_transform", "statistics", "pattern",
            "returns", "range", "calendar"} <= groups
    assert ("cycle" in groups) == profile_for(timeframe).cycle
    assert {"rsi_7", "macd_hist", "cdl_engulfing", "logret_1_lag4", "gap"} <= set(names) or timeframe in ("1w", "1m")
    assert all(f.window <= profile_for(timeframe).warmup for f in cat)
    assert feature_names(timeframe, {"momentum"}) == [f.name for f in cat if f.group == "momentum"]


def test_calendar_features_follow_the_timeframe() -> None:
    assert {"hour_sin", "dow_sin"} <= set(feature_names("1h"))
    assert "hour_sin" not in feature_names("1d") and "dow_sin" in feature_names("1d")
    assert "month_sin" in feature_names("1m") and "dow_sin" not in feature_names("1w")


def test_output_rows_columns_and_dtypes(real_daily) -> None:
    candles = real_daily["BTCUSDT"]
    out = build_features(candles, "1d")
    assert len(out) == len(candles) and list(out.columns[:7]) == list(candles.columns)
    assert list(out.columns[7:-1]) == feature_names("1d") and out.columns[-1] == WARMUP_COLUMN
    assert all(out[c].dtype == np.float32 for c in feature_names("1d"))
    patterns = out.loc[~out[WARMUP_COLUMN], feature_names("1d", {"pattern"})]
    assert set(np.unique(patterns.to_numpy())) <= {-1.0, 0.0, 1.0} and (patterns != 0).any().sum() > 20


def test_no_two_columns_compute_the_same_thing(real_daily) -> None:
    out = build_features(real_daily["BTCUSDT"], "1d")
    # candle patterns are distinct TA-Lib functions; sparse as they are, two rare ones can coincide
    valid = out.loc[~out[WARMUP_COLUMN], [n for n in feature_names("1d") if not n.startswith("cdl_")]]
    varying = valid.loc[:, valid.std() > 0]
    corr = np.corrcoef(varying.to_numpy(np.float64).T)
    np.fill_diagonal(corr, 0)
    i, j = np.where(np.abs(corr) > 0.9999)
    assert not [(varying.columns[a], varying.columns[b]) for a, b in zip(i, j) if a < b]


def test_warmup_rows_are_marked_and_the_rest_are_finite(real_daily, synthetic) -> None:
    for name, timeframe, candles in _cases(real_daily, synthetic):
        out = build_features(candles, timeframe)
        warm = profile_for(timeframe).warmup
        assert out[WARMUP_COLUMN].iloc[:warm].all(), name
        assert np.isfinite(_values(out[~out[WARMUP_COLUMN]], timeframe)).all(), name
        assert (~out[WARMUP_COLUMN]).sum() == max(0, len(candles) - warm), name


@pytest.mark.parametrize("factor", [1e-4, 3.7e3])
def test_every_column_is_unchanged_when_prices_are_scaled(real_daily, synthetic, factor: float) -> None:
    for name, timeframe, candles in _cases(real_daily, synthetic):
        scaled = candles.copy()
        scaled[["open", "high", "low", "close", "vwap"]] *= factor
        a, b = build_features(candles, timeframe), build_features(scaled, timeframe)
        valid = ~a[WARMUP_COLUMN].to_numpy()
        assert (valid == ~b[WARMUP_COLUMN].to_numpy()).all()
        x, y = _values(a[valid], timeframe), _values(b[valid], timeframe)
        bad = ~np.isclose(x, y, rtol=1e-5, atol=1e-6)
        assert not bad.any(), (name, sorted({feature_names(timeframe)[j] for j in np.where(bad)[1]}))


def test_every_column_is_unchanged_when_volume_is_scaled(real_daily, synthetic) -> None:
    for name, timeframe, candles in _cases(real_daily, synthetic):
        scaled = candles.assign(volume=candles["volume"] * 1234.5)
        a, b = build_features(candles, timeframe), build_features(scaled, timeframe)
        valid = ~a[WARMUP_COLUMN].to_numpy()
        bad = ~np.isclose(_values(a[valid], timeframe), _values(b[valid], timeframe), rtol=1e-5, atol=1e-6)
        assert not bad.any(), (name, sorted({feature_names(timeframe)[j] for j in np.where(bad)[1]}))


def test_no_lookahead_prefixes_give_the_same_values(real_daily, synthetic) -> None:
    for name, timeframe, candles in _cases(real_daily, synthetic):
        full = _values(build_features(candles, timeframe), timeframe)
        for k in sorted({30, len(candles) // 3, len(candles) // 2, len(candles) - 1}):
            part = _values(build_features(candles.iloc[:k], timeframe), timeframe)
            np.testing.assert_array_equal(part, full[:k], err_msg=f"{name} k={k}")


def test_serving_window_gives_the_full_history_values(real_daily, synthetic) -> None:
    for name, timeframe, candles in _cases(real_daily, synthetic):
        profile = profile_for(timeframe)
        if profile.name == "compact":
            continue  # weekly and monthly candles are served from their whole retained history
        full = build_features(candles, timeframe)
        for end in (len(candles), len(candles) - 37):
            window = candles.iloc[end - profile.serving_window: end]
            recent = latest_features(window, timeframe, rows=30)
            assert not recent[WARMUP_COLUMN].any()
            np.testing.assert_allclose(_values(recent, timeframe), _values(full, timeframe, slice(end - 30, end)),
                                       rtol=1e-5, atol=1e-6, err_msg=f"{name} end={end}")


def test_directional_movement_matches_talib_on_continuous_prices(synthetic) -> None:
    candles = synthetic[next(iter(synthetic))][1]
    h, lo, c = (candles[k].to_numpy() / candles["close"].iloc[0] for k in ("high", "low", "close"))
    ours = directional_movement(h, lo, c, 14)
    ref = {"plus_dm": talib.PLUS_DM(h, lo, 14), "minus_dm": talib.MINUS_DM(h, lo, 14),
           "plus_di": talib.PLUS_DI(h, lo, c, 14), "minus_di": talib.MINUS_DI(h, lo, c, 14),
           "dx": talib.DX(h, lo, c, 14), "adx": talib.ADX(h, lo, c, 14), "adxr": talib.ADXR(h, lo, c, 14)}
    for key, expected in ref.items():
        np.testing.assert_allclose(ours[key], expected, rtol=1e-9, atol=1e-9, err_msg=key)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="lack columns"):
        build_features(pd.DataFrame({"close": [1.0]}), "1d")
    with pytest.raises(ValueError, match="timeframe"):
        build_features(pd.DataFrame(columns=["timestamp", "open", "high", "low", "close", "volume"]), "5m")
    empty = build_features(pd.DataFrame(columns=["timestamp", "open", "high", "low", "close", "volume"]), "1d")
    assert empty.empty and WARMUP_COLUMN in empty.columns
