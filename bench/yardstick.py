"""The yardstick band of bench.honesty and bench.band_scale: the band every forecaster stated
before the band had a volatility model (the 20-candle rolling scale, adapted to each coin's own
recent misses at TODAYS_RATE, with the full regime margin, not widened). Interval scores are
stated as ratios to it. A baseline's definition, kept here: the product serves `training.band`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.profiles import profile_for
from market_data.timeframes import HORIZON
from training.band.band import Band
from training.band.quantiles import BAND_MISS, band_quantiles, naive_move_halves
from training.band.scale import ROLLING, BandScale
from training.dataset import Split

TODAYS_RATE, TODAYS_MARGIN = 0.02, 1.0


def band_adjustments(close: np.ndarray, scale: BandScale, lo: np.ndarray, hi: np.ndarray, rate: float) -> np.ndarray:
    """Adaptive conformal inference on each symbol's own recent candles (Gibbs and Candes 2021,
    as quantile tracking): how far, in band units (the band's `scale`), to widen (or, negative,
    narrow) each side of the band with quantiles `lo`, `hi` (one per horizon) for a forecast
    made after the last candle of each row of `close` (rows x candles); (rows x horizons).

    The band is replayed over the window's past origins in time order: each past origin whose
    h-candle outcome the window already holds widens the h-step band by `rate` * 0.8 after a
    miss and narrows it by `rate` * 0.2 after a hit, so the width drifts to where the band misses
    20 % of the time in the symbol's current regime (calmer or wilder than validation's). The
    validation band is the start of every replay; rate 0 leaves it as it is."""
    n, length = close.shape
    horizons = len(lo)
    widen = np.zeros((n, horizons))
    if rate <= 0 or length <= scale.window + 1:
        return widen
    log_close = np.log(close)
    at = scale.every(log_close, horizons)
    steps = np.arange(1, horizons + 1)
    lo_arr, hi_arr = np.asarray(lo, dtype=np.float64)[None, :], np.asarray(hi, dtype=np.float64)[None, :]
    for t in range(scale.window, length - 1):
        known = t + steps <= length - 1
        ahead = t + steps[known]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (log_close[:, ahead] - log_close[:, t: t + 1]) / at[:, t, known]
        part = widen[:, known]
        miss = ((z < lo_arr[:, known] - part) | (z > hi_arr[:, known] + part)).astype(np.float64)
        widen[:, known] = np.where(np.isfinite(z), part + rate * (miss - BAND_MISS), part)
    return widen


def band_of(scale: BandScale, close: np.ndarray, quantiles: tuple[np.ndarray, np.ndarray], widen_out: bool,
            rate: float = 0.0, market: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Naive's band (log returns from the last close, origins x steps) for origins whose windows
    are `close`, with `quantiles` (lo, hi) in `scale`'s units, adapted at `rate` to each coin's
    own misses over its window, moved out by the market-wide widening `market`; widened to never
    narrow as the product serves it (`Band.served`), or not."""
    lo, hi = (np.asarray(q, dtype=np.float64) for q in quantiles)
    shift = band_adjustments(close, scale, lo, hi, rate) if rate > 0 else np.zeros((len(close), len(lo)))
    if market is not None:
        shift = shift + market[:, : len(lo)]
    if widen_out:
        served = Band(scale, tuple(lo), tuple(hi), tuple(lo), tuple(hi)).served(np.zeros_like(shift), close, shift)
        return served.naive_lower, served.naive_upper
    at = scale.at(np.log(close), len(lo))
    lower = lo - shift
    return at * lower, at * np.maximum(hi + shift, lower)


def todays_band(candles: dict[str, pd.DataFrame], split: Split, timeframe: str,
                close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The yardstick at origins whose windows are `close`: naive's, quantiles from validation."""
    rolling = BandScale(ROLLING, profile_for(timeframe).volatility_window)
    halves = naive_move_halves(candles, split.valid_start, split.valid_end, rolling, HORIZON)
    lo, hi = band_quantiles(np.concatenate(halves), halves, margin=TODAYS_MARGIN)
    return band_of(rolling, close, (lo, hi), widen_out=False, rate=TODAYS_RATE)
