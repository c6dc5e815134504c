"""The band's scale: how far a coin's close typically moves in the next h candles, from its own
recent closes. Bands are quantiles of moves divided by this scale (conformal), so a better
forecast of the coming volatility gives a sharper band at the same coverage.

Two kinds, one interface (`BandScale.at`, `BandScale.every`):
- `rolling`: the standard deviation of the last `Profile.volatility_window` one-candle returns
  times sqrt(h), a random walk's spread: the band's scale before a volatility model existed and the
  fallback wherever the other kind cannot be computed.
- `har`: a HAR-type regression (Corsi 2009) per horizon, fitted across all coins of a timeframe:
  log of the next h candles' realised volatility (root mean square of their one-candle returns)
  against the log realised volatility over several past windows. Volatility clusters and mean-
  reverts over several time scales; one window cannot tell a calm week in a wild quarter from a
  calm quarter. Written relative to the base window's volatility, so it is scale-free: a fit on
  all coins serves any coin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ROLLING, HAR = "rolling", "har"
# past candles of realised volatility per HAR candidate (validation picks among them and the
# rolling window, `training.band.choice`); the second window, 20, is the base. The set adding 250 candles
# (a slow level volatility reverts to) is the sharper at h = 30 on bench.band_scale's real windows;
# while bands adapted to each coin's recent misses (a rate of 0.02, since dropped) its h = 1 band covered only
# 0.71-0.74 there, without adaptation 0.77-0.83 (bench/README.md, "bench.band_scale").
HAR_WINDOW_SETS: tuple[tuple[int, ...], ...] = ((5, 20, 100), (5, 20, 100, 250))
HAR_WINDOWS = HAR_WINDOW_SETS[0]
HAR_BASE = 1  # index of the base window in a set
FIT_ROWS = 200_000  # rows of a fit, evenly thinned: the coefficients settle long before that


def rolling_return_std(log_close: np.ndarray, window: int) -> np.ndarray:
    """(rows x candles) population standard deviation of the last `window` one-candle log
    returns, per row (NaN until a row has them)."""
    rets = np.diff(log_close, axis=1)
    out = np.full(log_close.shape, np.nan)
    if rets.shape[1] >= window:
        out[:, window:] = np.lib.stride_tricks.sliding_window_view(rets, window, axis=1).std(axis=-1)
    return out


def realised_volatility(log_close: np.ndarray, window: int) -> np.ndarray:
    """(rows x candles) root mean square of the last `window` one-candle log returns up to each
    candle (NaN until a row has them): realised volatility, by cumulative sums."""
    squares = np.diff(log_close, axis=1) ** 2
    sums = np.concatenate([np.zeros((len(log_close), 1)), np.nancumsum(squares, axis=1)], axis=1)
    out = np.full(log_close.shape, np.nan)
    if log_close.shape[1] > window:
        out[:, window:] = np.sqrt(np.maximum(sums[:, window:] - sums[:, :-window], 0.0) / window)
    return out


def har_inputs(log_close: np.ndarray, windows: tuple[int, ...] = HAR_WINDOWS) -> tuple[np.ndarray, np.ndarray]:
    """The base window's log realised volatility (rows x candles) and the regressors (rows x
    candles x (1 + other windows)): an intercept and log(rv_w / rv_base) of each other window."""
    with np.errstate(divide="ignore", invalid="ignore"):  # a frozen coin: log 0, then -inf - -inf (NaN, handled)
        logs = [np.log(realised_volatility(log_close, w)) for w in windows]
        base = logs[HAR_BASE]
        others = [v - base for i, v in enumerate(logs) if i != HAR_BASE]
    return base, np.stack([np.ones_like(base), *others], axis=-1)


@dataclass
class BandScale:
    """(rows x steps) scale of the next steps' cumulative move, from each row's closes up to its
    last candle. `coef` (horizons x regressors) only for `har`."""

    kind: str = ROLLING
    window: int = 20  # the rolling kind's window (`Profile.volatility_window`)
    coef: list[list[float]] = field(default_factory=list)
    windows: tuple[int, ...] = HAR_WINDOWS  # the har kind's past windows

    def as_dict(self) -> dict:
        return {"kind": self.kind, "window": self.window, "coef": self.coef, "windows": list(self.windows)}

    @property
    def history(self) -> int:
        """Candles before an origin its scale needs."""
        return self.window if self.kind == ROLLING else max(self.window, *self.windows)

    @property
    def name(self) -> str:
        return self.kind if self.kind == ROLLING else f"{self.kind}{'-'.join(map(str, self.windows))}"

    @classmethod
    def from_dict(cls, data: dict | None, window: int = 20) -> BandScale:
        """Calibrations saved before the band had a volatility model scale with the rolling window."""
        if not data:
            return cls(ROLLING, window)
        return cls(data["kind"], int(data["window"]), [list(map(float, row)) for row in data.get("coef", [])],
                   tuple(int(w) for w in data.get("windows", HAR_WINDOWS)))

    def every(self, log_close: np.ndarray, steps: int) -> np.ndarray:
        """(rows x candles x steps) the scale at every candle of each row (NaN where unknown)."""
        root = np.sqrt(np.arange(1, steps + 1))
        rolling = rolling_return_std(log_close, self.window)[:, :, None] * root
        if self.kind == ROLLING:
            return rolling
        base, inputs = har_inputs(log_close, self.windows)
        coef = np.asarray(self.coef, dtype=np.float64)
        coef = np.vstack([coef, np.repeat(coef[-1:], max(0, steps - len(coef)), axis=0)])[:steps]
        har = np.exp(base[:, :, None] + inputs @ coef.T) * root
        return np.where(np.isfinite(har) & (har > 0), har, rolling)

    def at(self, log_close: np.ndarray, steps: int) -> np.ndarray:
        """(rows x steps) the scale at each row's last candle; where even the rolling window is
        unknown or flat (a new or frozen coin), the median of the others (0.02 sqrt(h) if none)."""
        return usable_scale(self.every(log_close[:, -self.history - 2:], steps)[:, -1, :])


def usable_scale(scale: np.ndarray) -> np.ndarray:
    """(rows x steps) with every unknown or zero row replaced by the median of the known ones."""
    ok = np.isfinite(scale).all(axis=1) & (scale > 0).all(axis=1)
    if ok.all():
        return scale
    fallback = np.median(scale[ok], axis=0) if ok.any() else 0.02 * np.sqrt(np.arange(1, scale.shape[1] + 1))
    return np.where(ok[:, None], scale, fallback[None, :])


def fit_har(candles: dict[str, pd.DataFrame], end: pd.Timestamp, steps: int, window: int,
            windows: tuple[int, ...] = HAR_WINDOWS) -> BandScale:
    """The HAR band scale fitted on every candle before `end` of every coin whose next `steps`
    candles also lie before it: per horizon h, least squares of log(rv of the next h returns /
    rv_base) on `har_inputs`. Rows with a flat stretch (a zero realised volatility) are left out."""
    xs, ys = [], []
    for frame in candles.values():
        before = frame.loc[frame["timestamp"] < end, "close"].to_numpy(np.float64)
        if len(before) <= max(windows) + steps:
            continue
        log_close = np.log(before)[None, :]
        base, inputs = har_inputs(log_close, windows)
        future = future_realised_volatility(log_close, steps)[0]
        with np.errstate(divide="ignore"):
            target = np.log(future) - base[0][:, None]
        ok = np.isfinite(inputs[0]).all(axis=1) & np.isfinite(target).all(axis=1)
        xs.append(inputs[0][ok])
        ys.append(target[ok])
    if not xs or sum(len(x) for x in xs) < 100:
        raise ValueError(f"too little history before {end} to fit the band's volatility model "
                         f"({sum(len(x) for x in xs)} usable candles, at least 100 are needed)")
    x, y = np.concatenate(xs), np.concatenate(ys)
    keep = np.unique(np.linspace(0, len(x) - 1, min(len(x), FIT_ROWS)).round().astype(int))
    coef, *_ = np.linalg.lstsq(x[keep], y[keep], rcond=None)
    return BandScale(HAR, window, coef.T.tolist(), tuple(windows))


def future_realised_volatility(log_close: np.ndarray, steps: int) -> np.ndarray:
    """(rows x candles x steps) root mean square of the next h one-candle returns after each
    candle, h = 1..steps (NaN where the row ends sooner)."""
    squares = np.diff(log_close, axis=1) ** 2
    sums = np.concatenate([np.zeros((len(log_close), 1)), np.cumsum(squares, axis=1)], axis=1)
    candles = log_close.shape[1]
    out = np.full((len(log_close), candles, steps), np.nan)
    for h in range(1, steps + 1):
        out[:, : candles - h, h - 1] = np.sqrt((sums[:, h:] - sums[:, :-h]) / h)
    return out
