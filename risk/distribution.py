"""A forecast step's quantiles read as a whole distribution.

The served quantiles (`training.band.quantiles.LEVELS`) are joined linearly in normal scores: the
quantile function x(z) is piecewise linear between the points (z_p, q_p), z_p = Phi^-1(p), and
carries its outermost segments on past the 5 % and 95 % quantiles. Quantiles that lie on a normal
give that normal exactly; skewed or fat-tailed ones keep their shape between the levels fitted,
with normal-like tails beyond them (which validation could not check). One reading, used for the
probabilities, the path simulation and the scores alike.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
from scipy.special import ndtr

from training.band.quantiles import LEVELS

Z_LEVELS = np.array([NormalDist().inv_cdf(p) for p in LEVELS])


def normal_score(quantiles: np.ndarray, x: np.ndarray) -> np.ndarray:
    """z(x) of each row's distribution: `quantiles` (... x levels, non-decreasing), `x` (...).
    Where the quantiles hold a point (equal ones, a candle that cannot move), +-inf off it and
    the middle of its levels on it (a flat forecast's close is as likely above as below)."""
    q = np.asarray(quantiles, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    last = len(Z_LEVELS) - 2
    k = np.clip((q <= x[..., None]).sum(axis=-1) - 1, 0, last)
    q0 = np.take_along_axis(q, k[..., None], axis=-1)[..., 0]
    q1 = np.take_along_axis(q, k[..., None] + 1, axis=-1)[..., 0]
    dz = Z_LEVELS[k + 1] - Z_LEVELS[k]
    gap = q1 - q0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(gap > 0, Z_LEVELS[k] + (x - q0) * dz / np.where(gap > 0, gap, 1.0),
                     np.where(x > q0, np.inf, -np.inf))
        at = q == x[..., None]  # exactly at quantiles (all of them, for a point): the middle of their levels
        middle = (at * Z_LEVELS).sum(axis=-1) / at.sum(axis=-1)
    return np.where(at.any(axis=-1), middle, z)


def cdf(quantiles: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(value <= x) under each row's distribution (`normal_score`)."""
    return ndtr(normal_score(quantiles, x))


def value_at(quantiles: np.ndarray, z: np.ndarray) -> np.ndarray:
    """x(z) of each row's distribution: the inverse of `normal_score` (`quantiles` ... x levels,
    `z` broadcasting against `quantiles[..., 0]`)."""
    q = np.asarray(quantiles, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    k = np.clip(np.searchsorted(Z_LEVELS, z) - 1, 0, len(Z_LEVELS) - 2)
    shape = np.broadcast_shapes(q.shape[:-1], z.shape)
    q = np.broadcast_to(q, (*shape, q.shape[-1]))
    k = np.broadcast_to(k, shape)
    q0 = np.take_along_axis(q, k[..., None], axis=-1)[..., 0]
    q1 = np.take_along_axis(q, k[..., None] + 1, axis=-1)[..., 0]
    return q0 + (z - Z_LEVELS[k]) * (q1 - q0) / (Z_LEVELS[k + 1] - Z_LEVELS[k])


def gaussian_levels(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """(... x levels) quantiles of the normal whose 10 % and 90 % quantiles are `lower`, `upper`:
    the distribution of a band fitted before bands had one of their own."""
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    mid, half = (lower + upper) / 2, (upper - lower) / 2
    return mid[..., None] + half[..., None] * (Z_LEVELS / Z_LEVELS[LEVELS.index(0.90)])
