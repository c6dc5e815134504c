"""Proper scores of a forecast's 80 % band and of its whole distribution: they judge calibration
and sharpness together, so a band cannot win by being wide (coverage alone rewards that). In the close's log-return units
wherever they are reported, so that coins at any price compare."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from risk.distribution import cdf, value_at  # the one reading of a quantile table

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


# the levels at which CRPS integrates the pinball loss: fine enough that the sum is the integral
# to well under a percent for the distributions served here
CRPS_LEVELS = (np.arange(99) + 0.5) / 99


def crps(quantiles: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """The continuous ranked probability score of each row's distribution (`quantiles`, rows x
    LEVELS, read as `risk.distribution` reads them) at its outcome: twice the pinball loss
    integrated over every level. In the quantiles' units; lower is better."""
    z = np.array([NormalDist().inv_cdf(p) for p in CRPS_LEVELS])
    at = value_at(np.asarray(quantiles)[..., None, :], z)  # rows x CRPS_LEVELS
    miss = np.asarray(actual)[..., None] - at
    return 2.0 * np.maximum(CRPS_LEVELS * miss, (CRPS_LEVELS - 1.0) * miss).mean(axis=-1)


def pit(quantiles: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """The probability integral transform: each outcome's level under its distribution. Uniform
    when the distributions are calibrated; piled at both ends when they are too narrow."""
    return cdf(quantiles, actual)


def pit_histogram(values: np.ndarray, bins: int = 10) -> np.ndarray:
    """The share of PIT values in each of `bins` equal bins of [0, 1] (each 1 / bins if calibrated)."""
    counts, _ = np.histogram(np.clip(values, 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    return counts / max(1, counts.sum())
