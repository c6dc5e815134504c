"""No train/serve skew: for every timeframe and every model kind, the features a model sees at
serving equal its training row for the same candle, on real candles (with their own VWAP where
the source has one, the typical price where it has none, gaps and zero-volume hours included)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from features.build import feature_names
from market_data.csv_source import CsvSource
from tests.conftest import DAILY_DATA, HOURLY_DATA
from training.dataset import symbol_rows
from training.forecaster import Windows
from training.models.direct_rows import SEQ_LEN, sequence_features, symbol_direct_rows
from training.models.ensemble import DirectForecaster
from training.models.recursive_forecaster import RecursiveForecaster

# timeframe -> (fixture folder, ticker, first candle, last candle)
CASES = {
    "1h": (HOURLY_DATA, "X:FETUSDT", datetime(2023, 3, 1), datetime(2023, 6, 30)),
    "4h": (HOURLY_DATA, "X:INJUSDT", datetime(2023, 1, 1), datetime(2023, 6, 30)),
    "1d": (DAILY_DATA, "X:ETHUSDT", datetime(2021, 1, 1), datetime(2024, 12, 31)),
    "1w": (DAILY_DATA, "X:BTCUSDT", datetime(2018, 1, 1), datetime(2024, 12, 31)),
    "1m": (DAILY_DATA, "X:BTCUSDT", datetime(2018, 1, 1), datetime(2024, 12, 31)),
}


def _candles(timeframe: str) -> tuple[str, pd.DataFrame]:
    folder, ticker, start, end = CASES[timeframe]
    candles = CsvSource(Path(folder)).aggregates(ticker, timeframe, start.replace(tzinfo=timezone.utc),
                                                 end.replace(tzinfo=timezone.utc))
    return ticker, candles.reset_index(drop=True)


def _tiny_booster(features: list[str]) -> xgb.Booster:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, len(features))).astype(np.float32)
    y = rng.normal(size=(64, 3))
    return xgb.train({"multi_strategy": "one_output_per_tree", "nthread": 1, "max_depth": 2},
                     xgb.DMatrix(x, label=y, feature_names=features), num_boost_round=2)


class _Recorder:
    """A direct member that remembers what it was shown and predicts nothing."""

    name = "xgb_direct"

    def __init__(self) -> None:
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def predict(self, x: np.ndarray, seq: np.ndarray) -> np.ndarray:
        self.seen.append((x.copy(), seq.copy()))
        return np.zeros((len(x), 30))

    def save(self, folder: Path) -> None:  # pragma: no cover - never saved
        raise NotImplementedError


def _origins(stamps: pd.Series, candidates: pd.Series, window: int, count: int = 4) -> list[int]:
    """Up to `count` candle indices, spread over the history, that are training rows and have a
    full serving window before them."""
    index = np.flatnonzero(stamps.isin(candidates).to_numpy())
    index = index[index >= window - 1]
    assert len(index), "no training row has a full serving window before it"
    return sorted({int(i) for i in index[np.linspace(0, len(index) - 1, count).round().astype(int)]})


@pytest.mark.parametrize("timeframe", list(CASES))
def test_recursive_model_sees_its_training_row_at_serving(timeframe: str) -> None:
    ticker, candles = _candles(timeframe)
    features = feature_names(timeframe)
    model = RecursiveForecaster(_tiny_booster(features), features, timeframe, [1.0, 1.0, 1.0])
    rows = symbol_rows(candles, ticker, timeframe)
    assert len(rows), f"{timeframe}: the fixture gives no training rows"
    picks = _origins(candles["timestamp"], rows["timestamp"], model.window)
    windows = Windows.from_frames([candles.iloc[: i + 1] for i in picks], model.window)
    served = model.predict_windows(windows, 1).origin_features[features].to_numpy(np.float32)
    trained = rows.set_index("timestamp").loc[candles["timestamp"].iloc[picks], features].to_numpy(np.float32)
    np.testing.assert_allclose(served, trained, rtol=2e-5, atol=2e-6,
                               err_msg=f"{timeframe}: serving features differ from the training rows")


@pytest.mark.parametrize("timeframe", [tf for tf in CASES if tf != "1m"])
def test_direct_models_see_their_training_rows_at_serving(timeframe: str) -> None:
    ticker, candles = _candles(timeframe)
    recorder = _Recorder()
    model = DirectForecaster({"xgb_direct": recorder}, {"xgb_direct": 1.0}, timeframe)
    rows = symbol_direct_rows(candles, ticker, timeframe)
    assert len(rows), f"{timeframe}: the fixture gives no direct rows"
    row_stamps = pd.Series(pd.to_datetime(rows.timestamp, utc=True))
    picks = _origins(candles["timestamp"], row_stamps, model.window)
    windows = Windows.from_frames([candles.iloc[: i + 1] for i in picks], model.window)
    model.predict_windows(windows, 30)
    (x, seq), = recorder.seen
    at = pd.Index(row_stamps).get_indexer(candles["timestamp"].iloc[picks])
    np.testing.assert_allclose(x, rows.x[at], rtol=2e-5, atol=2e-6,
                               err_msg=f"{timeframe}: the tree members' serving features differ from training")
    assert seq.shape == (len(picks), SEQ_LEN, len(sequence_features(timeframe)))
    np.testing.assert_allclose(seq, rows.seq[at], rtol=2e-5, atol=2e-6,
                               err_msg=f"{timeframe}: the LSTM's serving sequence differs from training")


def test_the_daily_fixture_has_real_vwap_that_the_features_use() -> None:
    """The daily case above would not catch the skew if the fixture had no VWAP of its own."""
    _, candles = _candles("1d")
    typical = (candles["high"] + candles["low"] + candles["close"]) / 3
    assert candles["vwap"].notna().all()
    assert (np.abs(candles["vwap"] / typical - 1) > 1e-3).mean() > 0.5
