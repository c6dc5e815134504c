"""Benchmark serving's hot path: one symbol's 30-step recursive forecast (`RecursiveForecaster.forecast`),
against the plain way of writing the same recursion in the same run: a pandas window per step
through `latest_features` (the DataFrame path training uses) and a `DMatrix` per prediction.

    .venv/bin/python -m bench.recursion [--data ../shared/data/binance_daily] [--repeats 30]

The booster is fitted on the real candles' own features (200 trees of depth 10, the training
defaults), so prediction costs what a served model's does; the answer of both paths is checked
to be the same forecast before anything is timed. Serving's whole forecast is timed as well: the
recursion plus the calibration, the JSON answer and the SHAP explanation of the key indicators.

Calibration, evaluation and the backtests run the recursion over hundreds of windows at once, one
feature pass over all of them per step; that pass is timed on `--batch` real windows against the
plain way (the whole feature matrix of the stacked windows, then each window's last row).
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
from features.indicators import Inputs, compute_inputs
from features.profiles import profile_for
from market_data.timeframes import spec
from training.forecaster import Windows
from training.models.recursive_forecaster import RecursiveForecaster

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


def plain_closes(model: RecursiveForecaster, window: pd.DataFrame) -> np.ndarray:
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


def batch_pass(frames: list[pd.DataFrame], length: int, batch: int) -> tuple[Inputs, np.ndarray]:
    """`batch` windows of `length` real candles (sliding over the coins' histories) stacked end to
    end as one feature pass sees them, and the index of each window's last candle."""
    starts = [(k, i) for k, f in enumerate(frames) for i in range(len(f) - length + 1)]
    picks = [starts[i] for i in np.linspace(0, len(starts) - 1, batch).round().astype(int)]
    stacked = pd.concat([frames[k].iloc[i: i + length] for k, i in picks], ignore_index=True)
    inputs = Inputs(*(stacked[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")), None,
                    pd.DatetimeIndex(stacked["timestamp"]).tz_localize(None))
    return inputs, np.arange(1, batch + 1) * length - 1


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
    parser.add_argument("--batch", type=int, default=600, help="windows in one batched feature pass")
    args = parser.parse_args()
    files = sorted(args.data.glob("*.csv"))[:6]
    if not files:
        raise SystemExit(f"no daily candle files (*.csv) in {args.data}")
    frames = [read_candles(f) for f in files]
    names = feature_names(TIMEFRAME)
    booster, scale = fit_booster(frames, names)
    model = RecursiveForecaster(booster, names, TIMEFRAME, scale)
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
    inputs, tails = batch_pass(frames, model.window, args.batch)
    profile = profile_for(TIMEFRAME)
    kept = compute_inputs(inputs, profile, TIMEFRAME, keep=tails)[1]
    if not np.array_equal(kept, compute_inputs(inputs, profile, TIMEFRAME)[1][tails], equal_nan=True):
        raise SystemExit("the batched feature pass keeps other rows than the whole matrix has")
    repeats = max(3, args.repeats // 5)
    batch_ms = timed(lambda: compute_inputs(inputs, profile, TIMEFRAME, keep=tails), repeats)
    batch_plain_ms = timed(lambda: compute_inputs(inputs, profile, TIMEFRAME)[1][tails], repeats)
    print(f"recursive forecast, {TIMEFRAME}, {STEPS} steps, window {model.window} candles, "
          f"{booster.num_boosted_rounds()} rounds x 3 targets, {files[0].stem} (real candles), median of {args.repeats}")
    print(f"  the recursion, stacked numpy feature pass + inplace predict: {ours_ms:7.1f} ms")
    print(f"  the recursion, plain (pandas window, latest_features, DMatrix): {plain_ms:7.1f} ms  "
          f"({plain_ms / ours_ms:.2f}x ours)")
    print(f"  serving's whole forecast (recursion + calibration + answer + SHAP key indicators): {full_ms:7.1f} ms, "
          f"of which the SHAP explanation {explain_ms:.1f} ms")
    print(f"one step's feature pass over {args.batch} windows (calibration, evaluation, backtests), median of {repeats}:")
    print(f"  each window's last row kept before the matrix is built: {batch_ms:7.1f} ms")
    print(f"  plain (the whole matrix of the stacked windows, then the last rows): {batch_plain_ms:7.1f} ms  "
          f"({batch_plain_ms / batch_ms:.2f}x ours)")

if __name__ == "__main__":
    main()
