"""Walk-forward backtest: fit on candles up to `train_end`, forecast every origin of the test
period, and report each model beside naive in DESIGN.md's JSON shape."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluation import insample_naive_mae, evaluate, select_origins
from training.forecaster import HORIZON
from market_data.source import utc
from training.pipeline import StageTimer, fit_and_calibrate, load_candles

MODELS = {"xgboost"}


def run_backtest(data_dir: str | Path, tickers: list[str], timeframe: str, train_end: datetime, test_end: datetime,
                 model: str, params: dict[str, Any], use_ray: bool = True, stride: int | None = None,
                 max_origins: int = 600, storage_path: str | None = None,
                 echo: Callable[[str], None] = print) -> dict[str, Any]:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known: {sorted(MODELS)}")
    train_end_ts, test_end_ts = utc(train_end), utc(test_end)
    timer = StageTimer(f"backtest {timeframe}", echo=echo)
    forecaster, train_candles, split = fit_and_calibrate(
        timer, data_dir, tickers, timeframe, train_end_ts, (0.75, 0.25, 0.0), params, use_ray, storage_path,
        calibration_origins=max_origins)
    candles = load_candles(data_dir, list(train_candles), timeframe, test_end_ts)
    if stride is None:
        eligible = sum(int(((f["timestamp"] >= train_end_ts) & (f["timestamp"] < test_end_ts)).sum())
                       for f in candles.values())
        stride = max(1, int(np.ceil(eligible / max_origins)))
    origins = select_origins(candles, train_end_ts, test_end_ts, forecaster.window, stride=stride,
                             max_origins=max_origins)
    scale = insample_naive_mae(train_candles, train_end_ts)
    result = timer.run("evaluate", lambda: evaluate(forecaster, origins, scale),
                       lambda r: f"{r['n_origins']} origins every {stride} candles")
    return {
        "timeframe": timeframe,
        "train_end": train_end_ts.isoformat(),
        "test_end": test_end_ts.isoformat(),
        "n_symbols": len(set(origins.symbols)),
        "n_forecasts": len(origins),
        "models": {model: {"horizons": result["model"]["horizons"]},
                   "naive": {"horizons": result["naive"]["horizons"]}},
        "summary": {model: result["model"]["summary"], "naive": result["naive"]["summary"]},
        "reliability": {model: result["model"]["reliability"]},
        "origins": {"stride_candles": stride, "max_origins": max_origins, "horizon": HORIZON,
                    "note": "origins are test-period candles with a full feature window before them and "
                            f"{HORIZON} known candles after them, every {stride} candles"},
        "calibration": {"split": split.as_dict(), "origins": forecaster.calibration.n_origins},
        "seconds": timer.seconds,
    }
