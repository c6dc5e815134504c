"""Proper scores of a forecast's 80 % band: they judge calibration and sharpness together, so a
band cannot win by being wide (coverage alone rewards that). In the close's log-return units
wherever they are reported, so that coins at any price compare."""

from __future__ import annotations

import numpy as np

ALPHA = 0.2  # the band is the central 80 %: its ends are the 10 % and 90 % quantiles


def interval_score(lower: np.ndarray, upper: np.ndarray, actual: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Gneiting and Raftery's (2007) interval score of a central (1 - alpha) band: its width, plus
    2 / alpha times the distance by which the outcome falls outside. Lower is better."""
    below = np.maximum(lower - actual, 0.0)
    above = np.maximum(actual - upper, 0.0)
    return (upper - lower) + (2.0 / alpha) * (below + above)


def pinball_loss(quantile: np.ndarray, actual: np.ndarray, level: float) -> np.ndarray:
    """The pinball (quantile) loss of a forecast of the `level` quantile. Lower is better."""
    miss = actual - quantile
    return np.maximum(level * miss, (level - 1.0) * miss)
