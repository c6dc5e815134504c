"""What every forecaster shares: one code path from a model's raw returns to the 30-step answer,
for training's calibration, backtests and serving alike (the kinds live in `training.models`).

A kind turns windows of candles into raw cumulative log returns and shadows; the answer is then
made honest with the calibration fitted on held-out data: the cumulative
return is shrunk toward naive where the model has no proven edge, the 80 % band comes from
volatility-scaled conformal residuals, and `confidence` is the calibrated probability that the
predicted direction is right. Prices are in the answer; log returns are inside.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import xgboost as xgb

from features.build import REQUIRED, CandleStack
from features.profiles import profile_for
from market_data.timeframes import HORIZON
from training.band.scale import BandScale, usable_scale
from training.calibration import Calibration, confidence, kept_moves
from training.forecast import DIRECTION_NAMES, Forecast, ForecastStep

ARTIFACT_META = "forecaster.json"


@dataclass
class Windows(CandleStack):
    """(origins x candles) arrays of recent candles, newest last.

    `vwap` is the candles' own VWAP, NaN where the source had none: the features fall back to the
    typical price exactly where training's `build_features` does, so a model sees at serving the
    features it was trained on for the same candle.
    """

    vwap: np.ndarray  # NaN where a candle has none (the typical price stands in)
    # what forecasters derive from these candles (feature tails), shared by the models of an A/B
    derived: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_frames(cls, frames: list[pd.DataFrame], length: int) -> Windows:
        for i, frame in enumerate(frames):
            missing = [c for c in REQUIRED if c not in frame.columns]
            if missing:
                raise ValueError(f"window {i} lacks columns {missing}")
            if len(frame) < length:
                raise ValueError(f"window {i} has {len(frame)} candles; the forecaster needs {length}")
        tails = [f.iloc[-length:] for f in frames]

        def stack(col: str) -> np.ndarray:
            return np.stack([t[col].to_numpy(np.float64) for t in tails])

        def stack_vwap() -> np.ndarray:
            return np.stack([t["vwap"].to_numpy(np.float64) if "vwap" in t.columns else np.full(len(t), np.nan)
                             for t in tails])

        stamps = np.stack([pd.to_datetime(t["timestamp"], utc=True).dt.tz_localize(None).to_numpy("datetime64[ms]")
                           for t in tails])
        return cls(stack("open"), stack("high"), stack("low"), stack("close"), stack("volume"), stamps, stack_vwap())

    def __len__(self) -> int:
        return self.close.shape[0]


@dataclass
class ForecastArrays:
    """Forecasts of many origins: every array is (origins x steps) unless noted."""

    timestamps: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    confidence: np.ndarray
    direction: np.ndarray  # +1 up, -1 down, 0 flat (no proven edge)
    cum_return: np.ndarray  # shrunk cumulative log return, the point forecast
    raw_return: np.ndarray  # the model's own cumulative log return, before shrinking
    sigma: np.ndarray  # (origins,) recent one-candle volatility at the origin
    last_close: np.ndarray  # (origins,)
    origin_features: pd.DataFrame  # features at each origin (for explanations)
    naive_lower: np.ndarray  # naive's 80 % band: the origin's close carried forward
    naive_upper: np.ndarray
    quantiles: np.ndarray  # (origins x steps x LEVELS) the close's predictive distribution


class ForecastModel:
    """What every kind of forecaster (recursive, direct, ensemble) shares, as scikit-learn's
    estimators share one interface: the timeframe's profile and serving window, the calibration
    and metadata, one symbol's answer (`forecast`), and the artifact (`save` / `load`: JSON
    metadata beside the kind's own model files, never pickle). A kind implements
    `predict_windows` (many origins at once), `explain`, and its artifact's fields and files.

    Fitted, a forecaster is not changed: `with_calibration` and `with_meta` return a new one
    sharing the fitted model, and the market-wide widening of the band is an argument of each
    forecast (`shift`), not state."""

    kind = ""

    def __init__(self, timeframe: str, features: list[str], calibration: Calibration | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        self.timeframe = timeframe
        self.features = list(features)
        self.profile = profile_for(timeframe)
        self.window = self.profile.serving_window
        self.calibration = calibration or Calibration.identity(
            HORIZON, BandScale(window=self.profile.volatility_window))
        self.meta = dict(meta or {})

    def with_calibration(self, calibration: Calibration) -> Self:
        """The same fitted model with another calibration (its first fit's, for a refit)."""
        out = copy.copy(self)
        out.calibration = calibration
        return out

    def with_meta(self, **entries: Any) -> Self:
        """The same forecaster with `entries` added to its metadata."""
        out = copy.copy(self)
        out.meta = {**self.meta, **entries}
        return out

    # -- what a kind implements ------------------------------------------------------------------
    def predict_windows(self, windows: Windows, steps: int = HORIZON, shift: np.ndarray | None = None) -> ForecastArrays:
        """Forecasts of every origin of `windows`; `shift` (origins x steps, or steps, band units)
        moves each side of the band out by the market-wide adaptation's widening."""
        raise NotImplementedError

    def explain(self, out: ForecastArrays, top: int) -> list[str]:
        """The indicators that moved the first origin's forecast most (none if the kind cannot say)."""
        return []

    def artifact_fields(self) -> dict[str, Any]:
        """The kind's own entries of the artifact's JSON."""
        return {}

    def save_files(self, folder: Path) -> None:
        """The kind's model files."""

    @classmethod
    def from_artifact(cls, folder: Path, fields: dict[str, Any], calibration: Calibration) -> ForecastModel:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------
    def forecast(self, candles: pd.DataFrame, steps: int = HORIZON, top_indicators: int = 3,
                 shift: np.ndarray | None = None) -> Forecast:
        """A forecast of one symbol from its recent candles (at least `self.window`), its band
        widened by `shift` (steps, band units: the market-wide adaptation's now)."""
        windows = Windows.from_frames([candles], self.window)
        out = self.predict_windows(windows, steps, None if shift is None else np.asarray(shift)[None, :])
        return answer(out, steps, self.explain(out, top_indicators))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.save_files(folder)
        (folder / ARTIFACT_META).write_text(json.dumps({
            "kind": self.kind, "timeframe": self.timeframe, **self.artifact_fields(),
            "calibration": self.calibration.as_dict(), "meta": self.meta}, indent=1))

    @classmethod
    def load(cls, folder: Path) -> ForecastModel:
        try:
            fields = json.loads((folder / ARTIFACT_META).read_text())
            if fields.get("kind") != cls.kind:
                raise ValueError(f"artifact kind {fields.get('kind')!r} is not {cls.kind!r}")
            window = profile_for(fields["timeframe"]).volatility_window
            return cls.from_artifact(folder, fields, Calibration.from_dict(fields["calibration"], window))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, xgb.core.XGBoostError) as exc:
            raise ValueError(f"model artifact in {folder} is unreadable: {exc}") from exc


def check_steps(steps: int) -> None:
    if not 1 <= steps <= HORIZON:
        raise ValueError(f"steps must be between 1 and {HORIZON}, got {steps}")


def usable_sigma(sigma: np.ndarray) -> np.ndarray:
    """Recent one-candle volatility per origin (the confidence's unit); where it is missing or
    zero, the median of the others, as the band's scale (`usable_scale`)."""
    return usable_scale(np.asarray(sigma, dtype=np.float64)[:, None])[:, 0]


@dataclass
class RawForecast:
    """A model's own forecast of many origins, before calibration: cumulative log returns of the
    close and each step's upper and lower shadow (origins x steps), each origin's recent
    one-candle volatility, the steps' open times and the features at each origin."""

    returns: np.ndarray
    ups: np.ndarray
    downs: np.ndarray
    sigma: np.ndarray
    times: np.ndarray
    origin_features: pd.DataFrame


def calibrated_arrays(model: RawForecast, last_close: np.ndarray, cal: Calibration, recent_close: np.ndarray,
                      shift: np.ndarray | None = None) -> ForecastArrays:
    """Candles, band, direction and confidence from a model's raw forecast: what every
    forecaster, recursive or direct, answers with. `recent_close` (origins x candles) is the
    forecast's window, whose closes the band's scale is read from; `shift` (origins x steps, band
    units) widens the band by the market-wide adaptation (`training.band.market`)."""
    raw, ups, downs, sigma, times = model.returns, model.ups, model.downs, model.sigma, model.times
    steps = raw.shape[1]
    # beyond the validated horizon, and beyond the horizons where validation proved the model's
    # edge, the last such step is carried forward: one continuous path, naive from there on
    checked = min(cal.validated_horizon, cal.edge_horizon)
    p_right = confidence(cal, raw, sigma)
    cum = point_forecast(cal, raw, p_right)
    if 0 < checked < steps:
        cum[:, checked:] = cum[:, checked - 1: checked]
    close = last_close[:, None] * np.exp(cum)
    open_ = np.column_stack([last_close, close[:, :-1]])
    high = np.maximum(open_, close) * np.exp(ups)
    low = np.minimum(open_, close) * np.exp(-downs)
    band = cal.band.served(cum, recent_close, shift)
    c0 = last_close[:, None]
    direction, conf = path_direction(p_right, cum, checked)
    return ForecastArrays(times, open_, high, low, close, c0 * np.exp(band.lower), c0 * np.exp(band.upper), conf,
                          direction, cum, raw, sigma, last_close, model.origin_features,
                          c0 * np.exp(band.naive_lower), c0 * np.exp(band.naive_upper),
                          c0[..., None] * np.exp(band.quantiles))


def point_forecast(cal: Calibration, raw: np.ndarray, p_right: np.ndarray) -> np.ndarray:
    """The cumulative log return a forecast states: the model's, shrunk toward naive by how much
    edge validation proved at each horizon, and exactly naive (0) wherever it keeps no move
    (`kept_moves`). `p_right`: the calibrated chance that the model's sign is right. Before any
    calibration (`Calibration.identity`, no validation origins) it is the model's own forecast."""
    shrink = np.asarray(cal.shrink)
    if cal.n_origins == 0:
        return raw * shrink[None, : raw.shape[1]]
    return np.where(kept_moves(shrink, p_right), raw * shrink[None, : raw.shape[1]], 0.0)


def path_direction(p_right: np.ndarray, cum: np.ndarray, checked: int) -> tuple[np.ndarray, np.ndarray]:
    """Direction and confidence that agree with the close path: where the close moves, its sign
    (+1 up, -1 down) with the calibrated probability that it is right; where it does not (no
    proven edge), 0 (`flat`) with confidence 0.5. Beyond the validated horizon (or the horizons
    where validation proved an edge) the last checked step's direction is carried forward, as its
    close is, with confidence 0.5: no edge was checked there."""
    direction = np.sign(cum).astype(int)
    conf = np.where(direction != 0, p_right, 0.5)
    if 0 < checked < cum.shape[1]:
        direction[:, checked:] = direction[:, checked - 1: checked]
        conf[:, checked:] = 0.5
    return direction, conf


def answer(out: ForecastArrays, steps: int, indicators: list[str]) -> Forecast:
    """The first origin of `out` as one symbol's forecast."""
    rows = [ForecastStep(
        step=i + 1, timestamp=pd.Timestamp(out.timestamps[0, i], tz="UTC"),
        open=float(out.open[0, i]), high=float(out.high[0, i]), low=float(out.low[0, i]),
        close=float(out.close[0, i]), lower=float(out.lower[0, i]), upper=float(out.upper[0, i]),
        confidence=round(float(out.confidence[0, i]), 4), direction=DIRECTION_NAMES[int(out.direction[0, i])],
        naive_lower=float(out.naive_lower[0, i]), naive_upper=float(out.naive_upper[0, i]),
        quantiles=tuple(float(q) for q in out.quantiles[0, i]),
    ) for i in range(steps)]
    return Forecast(direction=rows[-1].direction, confidence_avg=round(float(out.confidence[0, :steps].mean()), 4),
                    key_indicators=list(indicators), steps=rows)
