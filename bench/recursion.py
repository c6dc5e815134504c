"""Benchmark serving's hot path: one symbol's 30-step recursive forecast (`Forecaster.forecast`),
against the plain way of writing the same recursion in the same run: a pandas window per step
through `latest_features` (the DataFrame path training uses) and a `DMatrix` per prediction.

    .venv/bin/python -m bench.recursion [--data ../shared/data/binance_daily] [--repeats 30]

The booster is fitted on the real candles' own features (200 trees of depth 10, the training
defaults), so prediction costs what a served model's does; the answer of both paths is checked
to be the same forecast before anything is timed. Serving's whole forecast is timed as well: the
recursion plus the calibration, the JSON answer and the SHAP explanation of the key indicators.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

from features.build import build_features, feature_names, latest_features
from market_data.timeframes import spec
from training.forecaster import Forecaster, Windows

TIMEFRAME = "1d"
STEPS = 30


def read_candles(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path)
    candles = raw.rename(columns={"open_time": "timestamp"})[["timestamp", "open", "high", "low", "close", "volume"]]
    candles["timestamp"] = pd.to_datetime(candles["timestamp"], utc=True)
    return candles


def fit_booster(frames: list[pd.DataFrame], names: list[str]) -> tuple[xgb.Booster, list[float]]:
    rows = []
    for candles in frames:
        feats = build_features(candles, TIMEFRAME)
        logc = np.log(feats["close"].to_numpy())
        target = np.column_stack([np.append(np.diff(logc), np.nan),
                                  feats["upper_shadow"].shift(-1), feats["lower_shadow"].shift(-1)])
        keep = ~feats["warmup"].to_numpy() & np.isfinite(target).all(axis=1)
        rows.append((feats.loc[keep, names].to_numpy(np.float32), target[keep]))
    x = np.concatenate([r[0] for r in rows])
    y = np.concatenate([r[1] for r in rows])
    scale = y.std(axis=0)
    booster = xgb.train({"max_depth": 10, "eta": 0.05, "tree_method": "hist", "multi_strategy": "one_output_per_tree"},
                        xgb.DMatrix(x, y / scale, feature_names=names), num_boost_round=200)
    return booster, scale.tolist()


def plain_closes(model: Forecaster, window: pd.DataFrame) -> np.ndarray:
    """The recursion written plainly: DataFrames and DMatrix, one step at a time (raw closes)."""
    frame = window.copy()
    offset = spec(TIMEFRAME).offset()
    closes = []
    for _ in range(STEPS):
        row = latest_features(frame, TIMEFRAME)
        pred = model.booster.predict(xgb.DMatrix(row[model.features].to_numpy(np.float32),
                                                 feature_names=model.features))[0] * model.target_scale
        last = frame.iloc[-1]
        new_close = last["close"] * np.exp(pred[0])
        high = max(last["close"], new_close) * np.exp(max(pred[1], 0.0))
        low = min(last["close"], new_close) * np.exp(-max(pred[2], 0.0))
        candle = {"timestamp": last["timestamp"] + offset, "open": last["close"], "high": high, "low": low,
                  "close": new_close, "volume": float(np.median(window["volume"].to_numpy()[-20:]))}
        frame = pd.concat([frame.iloc[1:], pd.DataFrame([candle])], ignore_index=True)
        closes.append(new_close)
    return np.asarray(closes)


def timed(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/binance_daily")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    files = sorted(args.data.glob("*.csv"))[:6]
    if not files:
        raise SystemExit(f"no daily candle files (*.csv) in {args.data}")
    frames = [read_candles(f) for f in files]
    names = feature_names(TIMEFRAME)
    booster, scale = fit_booster(frames, names)
    model = Forecaster(booster, names, TIMEFRAME, scale)
    window = frames[0].iloc[-model.window:].reset_index(drop=True)

    raw = model.raw_paths(Windows.from_frames([window], model.window), STEPS)[0]
    ours = window["close"].iloc[-1] * np.exp(np.cumsum(raw[0]))
    plain = plain_closes(model, window)
    if not np.allclose(ours, plain, rtol=1e-5):
        raise SystemExit(f"the two recursions disagree: {ours[:3]} vs {plain[:3]}")

    windows = Windows.from_frames([window], model.window)
    ours_ms = timed(lambda: model.raw_paths(windows, STEPS), args.repeats)
    plain_ms = timed(lambda: plain_closes(model, window), max(3, args.repeats // 5))
    full_ms = timed(lambda: model.forecast(window, STEPS), args.repeats)
    out = model.predict_windows(windows, STEPS)
    explain_ms = timed(lambda: model.explain(out, 3), args.repeats)
    print(f"recursive forecast, {TIMEFRAME}, {STEPS} steps, window {model.window} candles, "
          f"{booster.num_boosted_rounds()} rounds x 3 targets, {files[0].stem} (real candles), median of {args.repeats}")
    print(f"  the recursion, stacked numpy feature pass + inplace predict: {ours_ms:7.1f} ms")
    print(f"  the recursion, plain (pandas window, latest_features, DMatrix): {plain_ms:7.1f} ms  "
          f"({plain_ms / ours_ms:.2f}x ours)")
    print(f"  serving's whole forecast (recursion + calibration + answer + SHAP key indicators): {full_ms:7.1f} ms, "
          f"of which the SHAP explanation {explain_ms:.1f} ms")

if __name__ == "__main__":
    main()
