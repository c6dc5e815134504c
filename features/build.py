"""`build_features`: candles in, candles plus 150+ scale-free feature columns out.

The same function serves training (whole histories), backtesting and serving (a window of
recent candles plus predicted ones): there is one way to turn candles into features.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from features.indicators import Feature, Inputs, compute, compute_inputs
from features.profiles import profile_for

WARMUP_COLUMN = "warmup"  # True where the row's features are not yet trustworthy
REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")


@dataclass
class CandleStack:
    """Candles of many equally long windows as (windows x candles) arrays: what the one-pass
    feature builders read (`stacked_tail`)."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    stamps: np.ndarray  # datetime64[ms], naive UTC
    vwap: np.ndarray | None = None  # None: the typical price stands in for every candle


def _validate(candles: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED if c not in candles.columns]
    if missing:
        raise ValueError(f"candles lack columns {missing}; have {list(candles.columns)}")
    if len(candles) > 1 and not candles["timestamp"].is_monotonic_increasing:
        raise ValueError("candles must be sorted by timestamp")


def build_features(candles: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """The input rows with every feature of `catalogue(timeframe)` as float32 and a `warmup` flag.

    A row is flagged while the longest window is still filling (the profile's warm-up) or when
    any of its features is not finite; flagged rows must never reach a model.
    """
    _validate(candles)
    profile = profile_for(timeframe)
    base = candles.reset_index(drop=True)
    if base.empty:
        empty = pd.DataFrame({f.name: pd.Series(dtype="float32") for f in catalogue(timeframe)})
        return pd.concat([base, empty], axis=1).assign(**{WARMUP_COLUMN: pd.Series(dtype=bool)})
    specs, matrix = compute(base, profile, timeframe)
    values = matrix.astype(np.float32)
    if profile.windowed and len(base) >= profile.serving_window:
        values[profile.serving_window - 1:] = _serving_window_rows(base, timeframe)
    warm = np.arange(len(base)) < profile.warmup
    warm |= ~np.isfinite(values).all(axis=1)
    features = pd.DataFrame(values, columns=[s.name for s in specs], index=base.index)
    out = pd.concat([base, features], axis=1)
    out[WARMUP_COLUMN] = warm
    return out


def _serving_window_rows(base: pd.DataFrame, timeframe: str) -> np.ndarray:
    """Features of candles serving_window-1 .. n-1, each from the serving window ending at it."""
    window = profile_for(timeframe).serving_window
    ends = np.arange(window - 1, len(base))
    index = ends[:, None] + np.arange(1 - window, 1)[None, :]

    def rows(column: str) -> np.ndarray:
        return base[column].to_numpy(np.float64)[index]

    vwap = rows("vwap") if "vwap" in base.columns else None
    stamps = pd.to_datetime(base["timestamp"], utc=True).dt.tz_localize(None).to_numpy("datetime64[ms]")[index]
    stack = CandleStack(rows("open"), rows("high"), rows("low"), rows("close"), rows("volume"), stamps, vwap)
    return stacked_tail(stack, timeframe, 1)[:, 0, :]


def latest_features(recent: pd.DataFrame, timeframe: str, rows: int = 1) -> pd.DataFrame:
    """Features of the last `rows` candles from a window of recent ones (serving's path).

    Equal, to float32 precision, to `build_features` on the whole history for those rows, as
    long as the window holds at least `profile.serving_window` candles (warm-up included).
    """
    return build_features(recent, timeframe).iloc[-rows:]


def latest_features_batch(windows: list[pd.DataFrame], timeframe: str) -> pd.DataFrame:
    """The last row's features of many equally long windows, in one pass (see `stacked_latest`)."""
    if not windows:
        return pd.DataFrame(columns=feature_names(timeframe))
    length = len(windows[0])
    if any(len(w) != length for w in windows):
        raise ValueError("windows must all have the same number of candles")
    for window in windows:
        _validate(window)

    def stack(column: str) -> np.ndarray:
        return np.stack([w[column].to_numpy(np.float64) for w in windows])

    vwap = stack("vwap") if all("vwap" in w.columns for w in windows) else None
    stamps = np.stack([pd.to_datetime(w["timestamp"], utc=True).to_numpy("datetime64[ms]") for w in windows])
    return stacked_latest(CandleStack(stack("open"), stack("high"), stack("low"), stack("close"), stack("volume"),
                                      stamps, vwap), timeframe)


def stacked_latest(candles: CandleStack, timeframe: str) -> pd.DataFrame:
    """Features of the last candle of each row of (windows x candles) arrays, in one pass.

    The recursive forecast needs the newest row of hundreds of windows at every step; computing
    them one by one costs hundreds of TA-Lib calls each (see `stacked_tail`).
    """
    return pd.DataFrame(stacked_tail(candles, timeframe, 1)[:, 0, :], columns=feature_names(timeframe))


def stacked_tail(candles: CandleStack, timeframe: str, rows: int) -> np.ndarray:
    """Features of the last `rows` candles of each window: a (windows x rows x features) float32
    array in `feature_names(timeframe)` order, from one pass over all windows.

    Each window is rescaled to start near 1 (the features are scale-free, so nothing changes),
    the windows are stacked end to end, and every indicator runs once over the stack. A tail row
    sees only its own window, up to what recursive smoothers remember across the seam, which the
    warm-up has made negligible as long as `rows` leaves the warm-up in front of the tail (the
    same bound as `latest_features`; a test compares the two).
    """
    o, h, lo, c, v, vwap, stamps = (candles.open, candles.high, candles.low, candles.close, candles.volume,
                                    candles.vwap, candles.stamps)
    n, length = c.shape
    if length < profile_for(timeframe).warmup + rows:
        raise ValueError(f"windows of {length} candles cannot hold the {timeframe} warm-up and {rows} feature rows")
    close0 = c[:, :1]
    masked = np.where(v > 0, v, np.inf)
    volume0 = np.where(np.isfinite(masked.min(axis=1)), v[np.arange(n), np.argmax(v > 0, axis=1)], 1.0)[:, None]
    o1, h1, l1, c1 = ((a / close0).ravel() for a in (o, h, lo, c))
    v1 = (v / volume0).ravel()
    vwap1 = None if vwap is None else (vwap / close0).ravel()
    times = pd.DatetimeIndex(stamps.ravel().astype("datetime64[ms]"))  # naive UTC: the calendar reads hours, days
    profile = profile_for(timeframe)
    if profile.windowed:  # no seams: each window on its own (see `Profile.windowed`)
        def one(i: np.ndarray) -> np.ndarray:
            inputs = Inputs(o1[i], h1[i], l1[i], c1[i], v1[i], None if vwap1 is None else vwap1[i], times[i])
            return compute_inputs(inputs, profile, timeframe, keep=slice(length - rows, None))[1]

        return np.stack([one(i) for i in np.arange(n * length).reshape(n, length)]).astype(np.float32)
    tails = (np.arange(n)[:, None] * length + np.arange(length - rows, length)[None, :]).ravel()
    _, matrix = compute_inputs(Inputs(o1, h1, l1, c1, v1, vwap1, times), profile, timeframe, keep=tails)
    return matrix.reshape(n, rows, -1).astype(np.float32)


@lru_cache(maxsize=8)
def _catalogue(timeframe: str) -> tuple[Feature, ...]:
    profile = profile_for(timeframe)
    n = profile.warmup + 10
    stamps = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    wave = 1.0 + 0.1 * np.sin(np.arange(n) / 3.0)
    probe = pd.DataFrame({"timestamp": stamps, "open": wave, "high": wave * 1.01, "low": wave * 0.99,
                          "close": wave, "volume": np.ones(n)})
    specs, _ = compute(probe, profile, timeframe)
    return tuple(specs)


def catalogue(timeframe: str) -> list[Feature]:
    """Every feature of a timeframe with its group, window and source."""
    return list(_catalogue(timeframe))


def feature_names(timeframe: str, groups: set[str] | None = None) -> list[str]:
    """Feature column names, optionally only those of some groups (e.g. {"momentum", "volume"})."""
    return [f.name for f in _catalogue(timeframe) if groups is None or f.group in groups]
