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

from training.band.quantiles import band_quantiles
from training.band.scale import BandScale

MIN_KEPT = 20  # residuals a horizon needs before the model's own band replaces naive's there


@dataclass(frozen=True)
class ServedBand:
    """(rows x steps) the band's ends in log-return units from the last close: the forecast's,
    around its centre, and naive's (what the band would be if every step stated the last close)."""

    lower: np.ndarray
    upper: np.ndarray
    naive_lower: np.ndarray
    naive_upper: np.ndarray


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
    validation) are where the market-wide adaptation starts and how fast it steps; 0 and "": none."""

    scale: BandScale
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    naive_lo: tuple[float, ...]
    naive_hi: tuple[float, ...]
    market_rate: float = 0.0
    fitted_until: str = ""

    @classmethod
    def fit(cls, scale: BandScale, naive: list[np.ndarray], model: list[np.ndarray]) -> Band:
        """From validation's moves in `scale` units, each given as parts (the period's two halves,
        for `band_quantiles`' margin for a regime change; or one part): `naive`, naive's moves;
        `model`, the model's residuals where its forecast keeps a move (NaN where it states the
        last close). Horizons with fewer than MIN_KEPT residuals keep naive's band."""
        naive_lo, naive_hi = band_quantiles(np.concatenate(naive), naive)
        lo, hi = naive_lo.copy(), naive_hi.copy()
        pooled = np.concatenate(model)
        kept = np.isfinite(pooled).sum(axis=0) >= MIN_KEPT
        if kept.any():
            parts = [np.where(kept[None, :], part, 0.0) for part in model]  # naive's horizons keep naive's band
            model_lo, model_hi = band_quantiles(np.concatenate(parts), parts)
            lo[kept], hi[kept] = model_lo[kept], model_hi[kept]
        return cls(scale, _floats(lo), _floats(hi), _floats(naive_lo), _floats(naive_hi))

    @classmethod
    def gaussian(cls, scale: BandScale, horizon: int) -> Band:
        """Before calibration: a normal's 80 % band in the scale's units."""
        lo, hi = (-1.2816,) * horizon, (1.2816,) * horizon
        return cls(scale, lo, hi, lo, hi)

    def adapting(self, rate: float, fitted_until: str) -> Band:
        """The band with the market-wide adaptation from `fitted_until` at `rate` per candle."""
        return replace(self, market_rate=float(rate), fitted_until=fitted_until)

    def as_naive(self) -> Band:
        """Naive's band at every step, for a forecaster that states the last close throughout."""
        return replace(self, lo=self.naive_lo, hi=self.naive_hi)

    def extended(self, horizon: int) -> Band:
        """Padded to `horizon` steps with the last fitted quantiles: beyond the horizons validation
        could check, the band keeps widening with the scale."""
        pad = horizon - len(self.lo)
        if pad <= 0:
            return self

        def last(values: tuple[float, ...]) -> tuple[float, ...]:
            return values + (values[-1],) * pad

        return replace(self, lo=last(self.lo), hi=last(self.hi), naive_lo=last(self.naive_lo),
                       naive_hi=last(self.naive_hi))

    def served(self, centre: np.ndarray, recent_close: np.ndarray, shift: np.ndarray | None = None) -> ServedBand:
        """The band of forecasts whose cumulative log returns are `centre` (origins x steps; 0
        where a step states the last close, which takes naive's quantiles), made from windows of
        closes `recent_close` (origins x candles, newest last), moved out on each side by `shift`
        (origins x steps or steps, band units; the market-wide adaptation's). Each step's band
        holds its centre and is at least as wide as every earlier step's."""
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
        return ServedBand(lower, upper, naive_lower, naive_upper)

    def as_dict(self) -> dict[str, Any]:
        return {"scale": self.scale.as_dict(), "lo": list(self.lo), "hi": list(self.hi),
                "naive_lo": list(self.naive_lo), "naive_hi": list(self.naive_hi),
                "market_rate": self.market_rate, "fitted_until": self.fitted_until}

    @classmethod
    def from_dict(cls, data: dict[str, Any], window: int) -> Band:
        """`window`: the timeframe's rolling window, for bands saved without a volatility model."""
        return cls(BandScale.from_dict(data.get("scale"), window), _floats(data["lo"]), _floats(data["hi"]),
                   _floats(data["naive_lo"]), _floats(data["naive_hi"]), float(data.get("market_rate", 0.0)),
                   str(data.get("fitted_until", "")))


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


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
