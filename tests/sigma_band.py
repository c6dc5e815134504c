"""Calibrations of synthetic validation sets (raw forecasts, outcomes and each origin's one-candle
volatility, no candles) for tests: the band fitted in the rolling scale with its value at each
origin taken as sigma sqrt(h), and windows of closes whose rolling scale is that sigma, so the
forecaster serves these bands on the production path (`Band.served`)."""

from __future__ import annotations

import numpy as np

from training.band.band import BandBasis
from training.band.scale import ROLLING, BandScale
from training.calibration import Calibration, fit_calibration, horizon_scale

SCALE = BandScale(ROLLING, 20)


def closes(sigma: np.ndarray) -> np.ndarray:
    """(origins x 21) closes ending at 100 whose last 20 one-candle log returns alternate +-sigma:
    their rolling scale (`SCALE`) at the last candle is sigma sqrt(h)."""
    steps = np.where(np.arange(SCALE.window) % 2 == 0, 1.0, -1.0)[None, :] * np.asarray(sigma)[:, None]
    log_close = np.concatenate([np.zeros((len(sigma), 1)), np.cumsum(steps, axis=1)], axis=1)
    return 100.0 * np.exp(log_close - log_close[:, -1:])


def fit(raw: np.ndarray, actual: np.ndarray, sigma: np.ndarray, times: np.ndarray | None = None) -> Calibration:
    """`fit_calibration` with the band in `SCALE` at sigma sqrt(h) and naive's band from the
    origins' own moves (there are no other validation candles)."""
    return fit_calibration(raw, actual, sigma, times, BandBasis(SCALE, horizon_scale(sigma, raw.shape[1]), []))
