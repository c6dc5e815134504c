"""The 80 % band: one frozen record that owns how far a forecast's close may stray.

A band is quantiles of moves in units of a volatility model's scale (conformal, scaled by each
coin's own recent closes), fitted on validation only. It holds two pairs of quantiles per
horizon: the model's, for the steps where the forecast keeps the model's move, and naive's, for
the steps that state the last close (and the yardstick every band is scored against). Served,
it is the quantiles times the scale at the origin, moved out by the market-wide adaptation's
shift (`training.band.market`), and widened so that no step's band is narrower than an earlier
step's (`Band.served`): the one place a served band is built, by serving, backtests and the
benchmarks alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from risk.distribution import Z_LEVELS, gaussian_levels
from training.band.quantiles import BAND_ROWS, LEVELS, level_quantiles
from training.band.scale import BandScale

MIN_KEPT = 20  # residuals a horizon needs before the model's own band replaces naive's there


@dataclass(frozen=True)
class ServedBand:
    """(rows x steps) the band's ends in log-return units from the last close: the forecast's,
    around its centre, and naive's (what the band would be if every step stated the last close);
    `quantiles` (rows x steps x LEVELS), the forecast's whole distribution, of which `lower` and
    `upper` are the 10 % and 90 % quantiles."""

    lower: np.ndarray
    upper: np.ndarray
    naive_lower: np.ndarray
    naive_upper: np.ndarray
    quantiles: np.ndarray


@dataclass(frozen=True)
class BandBasis:
    """What a band is fitted in: the volatility model that scales it, its value at each validation
    origin (origins x horizons), and naive's moves of every validation candle in its units, by
    half of the period (`naive_move_halves`)."""

    scale: BandScale
    at: np.ndarray
    naive_halves: list[np.ndarray]


@dataclass(frozen=True)
class Band:
    """`lo`/`hi`: per horizon, the model's quantiles in `scale` units where its forecast keeps a
    move; `naive_lo`/`naive_hi`: naive's. `market_rate` and `fitted_until` (ISO time, the end of
    validation) are where the market-wide adaptation starts and how fast it steps; 0 and "": none.
    `levels`/`naive_levels`: the whole distribution, (LEVELS x horizons) quantiles in `scale` units
    whose 10 % and 90 % rows are `lo`/`hi` (`naive_lo`/`naive_hi`); empty for a band fitted before
    bands had one, which reads as the normal through its two ends (`table`)."""

    scale: BandScale
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    naive_lo: tuple[float, ...]
    naive_hi: tuple[float, ...]
    market_rate: float = 0.0
    fitted_until: str = ""
    levels: tuple[tuple[float, ...], ...] = ()
    naive_levels: tuple[tuple[float, ...], ...] = ()

    @classmethod
    def fit(cls, scale: BandScale, naive: list[np.ndarray], model: list[np.ndarray]) -> Band:
        """From validation's moves in `scale` units, each given as parts (the period's two halves,
        for `band_quantiles`' margin for a regime change; or one part): `naive`, naive's moves;
        `model`, the model's residuals where its forecast keeps a move (NaN where it states the
        last close). Horizons with fewer than MIN_KEPT residuals keep naive's band."""
        naive_table = level_quantiles(np.concatenate(naive), naive)
        table = naive_table.copy()
        pooled = np.concatenate(model)
        kept = np.isfinite(pooled).sum(axis=0) >= MIN_KEPT
        if kept.any():
            parts = [np.where(kept[None, :], part, 0.0) for part in model]  # naive's horizons keep naive's band
            table[:, kept] = level_quantiles(np.concatenate(parts), parts)[:, kept]
        (lo, hi), (naive_lo, naive_hi) = table[list(BAND_ROWS)], naive_table[list(BAND_ROWS)]
        return cls(scale, _floats(lo), _floats(hi), _floats(naive_lo), _floats(naive_hi),
                   levels=_table(table), naive_levels=_table(naive_table))

    @classmethod
    def gaussian(cls, scale: BandScale, horizon: int) -> Band:
        """Before calibration: a normal's distribution in the scale's units."""
        table = np.repeat(Z_LEVELS[:, None], horizon, axis=1)
        lo, hi = _floats(table[BAND_ROWS[0]]), _floats(table[BAND_ROWS[1]])
        return cls(scale, lo, hi, lo, hi, levels=_table(table), naive_levels=_table(table))

    def table(self, naive: bool = False) -> np.ndarray:
        """(LEVELS x horizons) the model's (or naive's) quantiles in scale units."""
        stored = self.naive_levels if naive else self.levels
        if stored:
            return np.asarray(stored, dtype=np.float64)
        lo, hi = (self.naive_lo, self.naive_hi) if naive else (self.lo, self.hi)
        return gaussian_levels(np.asarray(lo), np.asarray(hi)).T

    def adapting(self, rate: float, fitted_until: str) -> Band:
        """The band with the market-wide adaptation from `fitted_until` at `rate` per candle."""
        return replace(self, market_rate=float(rate), fitted_until=fitted_until)

    def as_naive(self) -> Band:
        """Naive's band at every step, for a forecaster that states the last close throughout."""
        return replace(self, lo=self.naive_lo, hi=self.naive_hi, levels=self.naive_levels)

    def extended(self, horizon: int) -> Band:
        """Padded to `horizon` steps with the last fitted quantiles: beyond the horizons validation
        could check, the band keeps widening with the scale."""
        pad = horizon - len(self.lo)
        if pad <= 0:
            return self

        def last(values: tuple[float, ...]) -> tuple[float, ...]:
            return values + (values[-1],) * pad

        def padded(table: tuple[tuple[float, ...], ...]) -> tuple[tuple[float, ...], ...]:
            return tuple(last(row) for row in table)

        return replace(self, lo=last(self.lo), hi=last(self.hi), naive_lo=last(self.naive_lo),
                       naive_hi=last(self.naive_hi), levels=padded(self.levels), naive_levels=padded(self.naive_levels))

    def served(self, centre: np.ndarray, recent_close: np.ndarray, shift: np.ndarray | None = None) -> ServedBand:
        """The band of forecasts whose cumulative log returns are `centre` (origins x steps; 0
        where a step states the last close, which takes naive's quantiles), made from windows of
        closes `recent_close` (origins x candles, newest last), moved out on each side by `shift`
        (origins x steps or steps, band units; the market-wide adaptation's). Each step's band
        holds its centre and is at least as wide as every earlier step's; so is the distribution's
        (`served_levels`)."""
        steps = centre.shape[1]
        at = self.scale.at(np.log(recent_close), steps)
        widen = 0.0 if shift is None else np.asarray(shift)[..., :steps]
        naive_lo, naive_hi = np.asarray(self.naive_lo)[:steps], np.asarray(self.naive_hi)[:steps]
        moves = centre != 0
        lo = np.where(moves, np.asarray(self.lo)[None, :steps], naive_lo[None, :])
        hi = np.where(moves, np.asarray(self.hi)[None, :steps], naive_hi[None, :])
        lower, upper = _scaled(at, lo, hi, widen)
        lower, upper = widening(np.minimum(centre + lower, centre), np.maximum(centre + upper, centre))
        naive_lower, naive_upper = widening(*_scaled(at, naive_lo[None, :], naive_hi[None, :], widen))
        raw = np.where(moves[..., None], self.table().T[None, :steps], self.table(naive=True).T[None, :steps])
        return ServedBand(lower, upper, naive_lower, naive_upper, served_levels(raw, lower, upper))

    def as_dict(self) -> dict[str, Any]:
        return {"scale": self.scale.as_dict(), "lo": list(self.lo), "hi": list(self.hi),
                "naive_lo": list(self.naive_lo), "naive_hi": list(self.naive_hi),
                "market_rate": self.market_rate, "fitted_until": self.fitted_until,
                "levels": [list(row) for row in self.levels], "naive_levels": [list(row) for row in self.naive_levels]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], window: int) -> Band:
        """`window`: the timeframe's rolling window, for bands saved without a volatility model."""
        return cls(BandScale.from_dict(data.get("scale"), window), _floats(data["lo"]), _floats(data["hi"]),
                   _floats(data["naive_lo"]), _floats(data["naive_hi"]), float(data.get("market_rate", 0.0)),
                   str(data.get("fitted_until", "")), _table(data.get("levels", [])),
                   _table(data.get("naive_levels", [])))


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _table(rows: Any) -> tuple[tuple[float, ...], ...]:
    return tuple(_floats(row) for row in rows)


def served_levels(raw: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """(rows x steps x LEVELS) the served distribution: the fitted quantiles `raw` (band units,
    the same shape) placed on the served band (`lower`, `upper`, rows x steps) by the one straight
    map that takes their 10 % and 90 % quantiles to its ends, so the adaptation's shift and the
    widening move every level with the band and the 10/90 % quantiles are the band exactly. Then,
    as the band, no central interval narrows with the step, and the levels stay in order."""
    a, b = raw[..., BAND_ROWS[0]], raw[..., BAND_ROWS[1]]
    gap = b - a
    fallback = (np.asarray(LEVELS) - LEVELS[BAND_ROWS[0]]) / (LEVELS[BAND_ROWS[1]] - LEVELS[BAND_ROWS[0]])
    with np.errstate(invalid="ignore", divide="ignore"):
        place = np.where(gap[..., None] > 0, (raw - a[..., None]) / np.where(gap > 0, gap, 1.0)[..., None], fallback)
    q = lower[..., None] + place * (upper - lower)[..., None]
    q[..., BAND_ROWS[0]], q[..., BAND_ROWS[1]] = lower, upper
    middle = len(LEVELS) // 2
    for inner in range(BAND_ROWS[0]):  # the tails beyond the band: never narrowing, never inside it
        outer = len(LEVELS) - 1 - inner
        q[..., inner], q[..., outer] = widening(np.minimum(q[..., inner], lower), np.maximum(q[..., outer], upper))
    q[..., middle] = np.clip(q[..., middle], lower, upper)
    for inner in range(BAND_ROWS[0] + 1, middle):  # inside the band: in order between its ends and the median
        outer = len(LEVELS) - 1 - inner
        q[..., inner], q[..., outer] = widening(q[..., inner], q[..., outer])
        q[..., inner] = np.clip(q[..., inner], lower, q[..., middle])
        q[..., outer] = np.clip(q[..., outer], q[..., middle], upper)
    return q


def _scaled(at: np.ndarray, lo: np.ndarray, hi: np.ndarray,
            shift: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(rows x steps) quantiles `lo`, `hi` moved out by `shift`, times the scale `at`. A band the
    adaptation narrowed past its width is a point."""
    lower = np.asarray(lo) - shift
    return at * lower, at * np.maximum(np.asarray(hi) + shift, lower)


def widening(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows x steps) band ends, each step's band at least as wide as every earlier step's: where
    a band would narrow (quantiles fitted per horizon wobble, a step that switches between the
    model's band and naive's), both ends move out by half the shortfall. A person reads a band
    that narrows further out as noise; widening only never loses coverage."""
    width = upper - lower
    short = (np.maximum.accumulate(width, axis=1) - width) / 2
    return lower - short, upper + short
