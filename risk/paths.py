"""Price paths consistent with every step's distribution, for the probabilities that depend on
the path (touching a level, a target before a stop) rather than on one step's close.

A path is a Brownian motion W read through each moment's distribution: at time t (in steps) the
log return is x_t(W_t / sqrt(t)) (`risk.distribution.value_at`), so its value at every step has
exactly that step's quantiles, and between steps the quantiles are joined in sqrt(time) (a
quantile table that lies on a random walk's normal gives that random walk exactly). Each step is
cut into `SUBSTEPS`; between two grid moments the price may still cross a level and come back,
which a Brownian bridge crosses with probability exp(-2 (x - a)(x - b) / v) (a, b the ends, v the
moment's variance increment), so a touch is judged as a candle's high and low would judge it.
Draws come from a fixed seed: the same forecast answers the same probability every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from market_data.timeframes import HORIZON
from risk.distribution import Z_LEVELS
from training.band.quantiles import BAND_ROWS

PATHS = 8192  # half of them the mirror of the other half (antithetic draws)
SUBSTEPS = 4
SEED = 20261207
PATH_STEPS = HORIZON  # the grid drawn once, long enough for any forecast
BAND_Z = float(Z_LEVELS[BAND_ROWS[1]] - Z_LEVELS[BAND_ROWS[0]])  # the 10-90 % width of a standard normal


@dataclass(frozen=True)
class Paths:
    """`values` (paths x grid moments): log returns from the last close at times `times` (steps,
    SUBSTEPS to a step); `variance` (grid moments): each moment's variance increment since the
    one before (the first: since the origin, where every path starts at 0)."""

    values: np.ndarray
    times: np.ndarray
    variance: np.ndarray

    def upto(self, steps: int) -> int:
        """How many grid moments lie within the first `steps` steps."""
        return int(np.searchsorted(self.times, steps + 1e-9))


def moment_quantiles(table: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(moments x levels) quantiles at fractional `times` (steps), from `table` (steps x levels,
    log returns from the last close), joined in sqrt(time) from the origin's point at 0."""
    full = np.vstack([np.zeros((1, table.shape[1])), table])
    k = np.clip(np.ceil(times - 1e-9).astype(int), 1, len(table))
    w = (np.sqrt(times) - np.sqrt(k - 1)) / (np.sqrt(k) - np.sqrt(k - 1))
    return full[k - 1] + w[:, None] * (full[k] - full[k - 1])


@dataclass(frozen=True)
class _Grid:
    """Brownian paths on the grid as standard scores W_t / sqrt(t) (paths x moments), with the
    segment of the quantile function each score falls in, flattened per moment (`segment`
    + moment x segments): the same for every forecast, so drawn once per process (float32: a
    probability needs no more)."""

    scores: np.ndarray
    segment: np.ndarray


SEGMENTS = len(Z_LEVELS) - 1


@lru_cache(maxsize=4)
def _grid(paths: int, moments: int, substeps: int, seed: int) -> _Grid:
    times = np.arange(1, moments + 1) / substeps
    half = np.random.default_rng(seed).standard_normal((paths // 2, moments)) * np.sqrt(1.0 / substeps)
    w = np.cumsum(np.vstack([half, -half]), axis=1)
    scores = (w / np.sqrt(times)[None, :]).astype(np.float32)
    segment = np.clip(np.searchsorted(Z_LEVELS, scores) - 1, 0, SEGMENTS - 1)
    flat = (segment + SEGMENTS * np.arange(moments)[None, :]).astype(np.int32)
    return _Grid(scores, flat)


def simulate(table: np.ndarray, paths: int = PATHS, substeps: int = SUBSTEPS, seed: int = SEED) -> Paths:
    """Paths through the distribution `table` (steps x levels, log returns from the last close;
    only as many steps as the question needs): `simulate_many` of the one forecast."""
    many = simulate_many(table[None], paths, substeps, seed)
    return Paths(many.values[0], many.times, many.variance[0])


def crossing(paths: Paths, level: float | np.ndarray, moments: int) -> np.ndarray:
    """(... paths x moments) the probability that each path crosses log return `level` (one, or
    one per forecast of `simulate_many`) between grid moment j - 1 and j (the origin before the
    first), given its values there: 1 where either end is past it, the Brownian bridge's chance
    where both are short of it."""
    ends = paths.values[..., :moments]
    starts = np.concatenate([np.zeros((*ends.shape[:-1], 1), dtype=ends.dtype), ends[..., :-1]], axis=-1)
    x = np.asarray(level, dtype=np.float32)
    x = x[:, None, None] if x.ndim else x
    side = np.where(x >= 0, np.float32(1.0), np.float32(-1.0))  # distances toward the level, as if above
    a, b = side * (starts - x), side * (ends - x)
    with np.errstate(over="ignore"):
        bridge = np.exp(np.float32(-2.0) * a * b / paths.variance[..., None, :moments].astype(np.float32))
    return np.where((a >= 0) | (b >= 0), np.float32(1.0), bridge)


def simulate_many(tables: np.ndarray, paths: int, substeps: int = SUBSTEPS, seed: int = SEED) -> Paths:
    """Paths for many forecasts at once (tables: forecasts x steps x levels, log returns from the
    last close), on the same Brownian draws: `values` forecasts x paths x moments, `variance`
    forecasts x moments. Each moment's quantile function is a straight line per segment between
    the levels' normal scores (the outer ones carried on): one lookup of its intercept and slope
    per path and moment."""
    count, steps, levels = tables.shape
    moments = steps * substeps
    times = np.arange(1, moments + 1) / substeps
    grid = _grid(paths, max(PATH_STEPS, steps) * substeps, substeps, seed)
    q = np.stack([moment_quantiles(t, times) for t in tables])  # forecasts x moments x levels
    slope = np.diff(q, axis=2) / np.diff(Z_LEVELS)[None, None, :]
    intercept = q[..., :-1] - Z_LEVELS[None, None, :-1] * slope
    at = grid.segment[:, :moments].ravel()[None, :]
    values = (np.take_along_axis(intercept.astype(np.float32).reshape(count, -1), at, axis=1)
              + grid.scores[:, :moments].ravel()[None, :]
              * np.take_along_axis(slope.astype(np.float32).reshape(count, -1), at, axis=1))
    spread = ((q[..., BAND_ROWS[1]] - q[..., BAND_ROWS[0]]) / BAND_Z) ** 2
    variance = np.maximum(np.diff(spread, axis=1, prepend=0.0), 1e-18)
    return Paths(values.reshape(count, paths, moments), times, variance)


def touch_chance(paths: Paths, level: np.ndarray, moments: int) -> np.ndarray:
    """(forecasts,) the chance that each forecast's paths (`simulate_many`) reach its `level` (log
    return, forecasts) within the first `moments` grid moments."""
    return 1.0 - np.prod(1.0 - crossing(paths, level, moments), axis=-1).mean(axis=-1)
