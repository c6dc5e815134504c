"""The 30-step forecaster: one code path for training's calibration, backtests and serving.

At each step the model predicts the next candle (close log return, upper and lower shadow) from
the features of the current window; the predicted candle is appended, with open = previous
close and a high and low from the predicted shadows (so indicators see realistic ranges, not
flat candles), the oldest candle drops out, and the features are recomputed. Many forecasts run
in lockstep, their windows stacked into one feature pass per step.

The answer is then made honest with the calibration fitted on held-out data: the cumulative
return is shrunk toward naive where the model has no proven edge, the 80 % band comes from
volatility-scaled conformal residuals, and `confidence` is the calibrated probability that the
predicted direction is right. Prices are in the answer; log returns are inside.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from config import HORIZON
from features.build import REQUIRED, feature_names, stacked_tail
from features.explain import key_indicators
from features.profiles import profile_for
from market_data.timeframes import spec
from training.calibration import Calibration, band_adjustments, confidence, horizon_scale, kept_moves
from training.forecast import DIRECTION_NAMES, Forecast, ForecastStep
from training.progress import report

ARTIFACT_MODEL = "model.ubj"
ARTIFACT_META = "forecaster.json"


@dataclass
class Windows:
    """(origins x candles) arrays of recent candles, newest last.

    `vwap` is the candles' own VWAP, NaN where the source had none: the features fall back to the
    typical price exactly where training's `build_features` does, so a model sees at serving the
    features it was trained on for the same candle.
    """

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    stamps: np.ndarray  # datetime64[ms], UTC
    vwap: np.ndarray
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


class ForecastModel:
    """What every kind of forecaster (recursive, direct, ensemble) shares, as scikit-learn's
    estimators share one interface: the timeframe's profile and serving window, the calibration
    and metadata, one symbol's answer (`forecast`), and the artifact (`save` / `load`: JSON
    metadata beside the kind's own model files, never pickle). A kind implements
    `predict_windows` (many origins at once), `explain`, and its artifact's fields and files."""

    kind = ""

    def __init__(self, timeframe: str, features: list[str], calibration: Calibration | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        self.timeframe = timeframe
        self.features = list(features)
        self.calibration = calibration or Calibration.identity(HORIZON)
        self.meta = dict(meta or {})
        self.profile = profile_for(timeframe)
        self.window = self.profile.serving_window

    # -- what a kind implements ------------------------------------------------------------------
    def predict_windows(self, windows: Windows, steps: int = HORIZON) -> ForecastArrays:
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
    def forecast(self, candles: pd.DataFrame, steps: int = HORIZON, top_indicators: int = 3) -> Forecast:
        """A forecast of one symbol from its recent candles (at least `self.window`)."""
        windows = Windows.from_frames([candles], self.window)
        out = self.predict_windows(windows, steps)
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
            return cls.from_artifact(folder, fields, Calibration.from_dict(fields["calibration"]))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, xgb.core.XGBoostError) as exc:
            raise ValueError(f"model artifact in {folder} is unreadable: {exc}") from exc


class Forecaster(ForecastModel):
    """The recursive XGBoost forecaster: one booster predicts the next candle, thirty times."""

    kind = "xgboost-recursive"

    def __init__(self, booster: xgb.Booster, features: list[str], timeframe: str, target_scale: list[float],
                 calibration: Calibration | None = None, meta: dict[str, Any] | None = None) -> None:
        super().__init__(timeframe, features, calibration, meta)
        self.booster = booster
        self.target_scale = np.asarray(target_scale, dtype=np.float64)
        self.sigma_feature = self.profile.volatility_feature
        self.booster.set_param({"nthread": 1})
        self._names = feature_names(timeframe)
        # the model's columns in the feature pass's order: the recursion stays in numpy (a
        # DataFrame and a DMatrix per step cost as much as the step's indicators)
        self._columns = np.array([self._names.index(f) for f in self.features], dtype=np.intp)

    # -- the recursion -----------------------------------------------------------------------
    def _predict_next(self, matrix: np.ndarray) -> np.ndarray:
        """The next candle's (close log return, upper shadow, lower shadow) from a (windows x
        features) matrix in the feature pass's column order."""
        out = np.asarray(self.booster.inplace_predict(matrix[:, self._columns]), dtype=np.float64)
        out = out.reshape(len(matrix), -1) * self.target_scale[None, :]
        out[:, 1:] = np.maximum(out[:, 1:], 0.0)  # shadows are never negative
        return out

    def raw_paths(self, windows: Windows, steps: int = HORIZON) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]:
        """Per origin and step: the model's close log returns, upper and lower shadows; the
        origin features; and the next candles' open times."""
        o, h, lo, c, v, vwap = (a.copy() for a in (windows.open, windows.high, windows.low, windows.close,
                                                   windows.volume, windows.vwap))
        stamps = windows.stamps.copy()
        n = len(windows)
        rets, ups, downs = (np.zeros((n, steps)) for _ in range(3))
        times = np.empty((n, steps), dtype="datetime64[ms]")
        offset = spec(self.timeframe).offset()
        typical_volume = np.median(v[:, -20:], axis=1)
        origin_features = None
        for step in range(steps):
            matrix = stacked_tail(o, h, lo, c, v, vwap, stamps, self.timeframe, 1)[:, 0, :]
            if step == 0:
                origin_features = pd.DataFrame(matrix, columns=self._names)
            pred = self._predict_next(matrix)
            rets[:, step], ups[:, step], downs[:, step] = pred[:, 0], pred[:, 1], pred[:, 2]
            new_open = c[:, -1]
            new_close = new_open * np.exp(pred[:, 0])
            new_high = np.maximum(new_open, new_close) * np.exp(pred[:, 1])
            new_low = np.minimum(new_open, new_close) * np.exp(-pred[:, 2])
            last = pd.DatetimeIndex(stamps[:, -1])
            next_time = (last + offset).to_numpy("datetime64[ms]")
            times[:, step] = next_time
            o = np.column_stack([o[:, 1:], new_open])
            h = np.column_stack([h[:, 1:], new_high])
            lo = np.column_stack([lo[:, 1:], new_low])
            c = np.column_stack([c[:, 1:], new_close])
            v = np.column_stack([v[:, 1:], typical_volume])
            vwap = np.column_stack([vwap[:, 1:], np.full(n, np.nan)])  # a predicted candle: typical price
            stamps = np.column_stack([stamps[:, 1:], next_time])
            report(step + 1, steps, f"steps of {n} recursive forecasts")
        return rets, ups, downs, origin_features, times

    def predict_windows(self, windows: Windows, steps: int = HORIZON) -> ForecastArrays:
        check_steps(steps)
        rets, ups, downs, feats, times = self.raw_paths(windows, steps)
        sigma = usable_sigma(feats[self.sigma_feature].to_numpy(np.float64))
        return calibrated_arrays(np.cumsum(rets, axis=1), ups, downs, sigma, windows.close[:, -1], times,
                                 self.calibration, feats, recent_close=windows.close,
                                 volatility_window=self.profile.volatility_window)

    # -- what serving adds, and the artifact ------------------------------------------------------
    def explain(self, out: ForecastArrays, top: int) -> list[str]:
        contribs = self.booster.predict(
            xgb.DMatrix(out.origin_features[self.features].to_numpy(np.float32), feature_names=self.features),
            pred_contribs=True,
        )
        return_contribs = contribs[0, 0] if contribs.ndim == 3 else contribs[0]
        return key_indicators(return_contribs, self.features, self.timeframe, top)

    def artifact_fields(self) -> dict[str, Any]:
        return {"features": self.features, "target_scale": self.target_scale.tolist()}

    def save_files(self, folder: Path) -> None:
        self.booster.save_model(folder / ARTIFACT_MODEL)

    @classmethod
    def from_artifact(cls, folder: Path, fields: dict[str, Any], calibration: Calibration) -> Forecaster:
        booster = xgb.Booster()
        booster.load_model(folder / ARTIFACT_MODEL)
        return cls(booster, fields["features"], fields["timeframe"], fields["target_scale"], calibration,
                   fields.get("meta"))


def check_steps(steps: int) -> None:
    if not 1 <= steps <= HORIZON:
        raise ValueError(f"steps must be between 1 and {HORIZON}, got {steps}")


def usable_sigma(sigma: np.ndarray) -> np.ndarray:
    """Recent volatility per origin; where it is missing or zero, the median of the others."""
    fallback = np.nanmedian(sigma[sigma > 0]) if (np.isfinite(sigma) & (sigma > 0)).any() else 0.02
    return np.where(np.isfinite(sigma) & (sigma > 0), sigma, fallback)


def calibrated_arrays(raw: np.ndarray, ups: np.ndarray, downs: np.ndarray, sigma: np.ndarray,
                      last_close: np.ndarray, times: np.ndarray, cal: Calibration,
                      origin_features: pd.DataFrame, recent_close: np.ndarray | None = None,
                      volatility_window: int = 0) -> ForecastArrays:
    """Candles, band, direction and confidence from a model's cumulative log returns (`raw`,
    origins x steps) and its shadows: what every forecaster, recursive or direct, answers with.
    With `recent_close` (origins x candles, the forecast's window), the band adapts to how the
    validation band has been covering this symbol lately (`band_adjustments`)."""
    steps = raw.shape[1]
    checked = cal.validated_horizon  # beyond it, the last checked forecast is carried forward
    p_right = confidence(cal, raw, sigma)
    cum = point_forecast(cal, raw, p_right)
    if checked < steps:
        cum[:, checked:] = cum[:, checked - 1: checked]
    close = last_close[:, None] * np.exp(cum)
    open_ = np.column_stack([last_close, close[:, :-1]])
    high = np.maximum(open_, close) * np.exp(ups)
    low = np.minimum(open_, close) * np.exp(-downs)
    # a forecast that states naive's close gets naive's band
    moves = cum != 0
    band_lo = np.where(moves, np.asarray(cal.band_lo)[None, :steps], np.asarray(cal.naive_lo)[None, :steps])
    band_hi = np.where(moves, np.asarray(cal.band_hi)[None, :steps], np.asarray(cal.naive_hi)[None, :steps])
    if recent_close is not None and cal.adapt_rate > 0:
        widen = band_adjustments(recent_close, volatility_window, np.asarray(cal.naive_lo)[:steps],
                                 np.asarray(cal.naive_hi)[:steps], cal.adapt_rate)
        band_lo, band_hi = band_lo - widen, band_hi + widen
        band_hi = np.maximum(band_hi, band_lo)  # a band narrowed past its width is a point
    scale = horizon_scale(sigma, steps)
    lower = last_close[:, None] * np.exp(cum + scale * band_lo)
    upper = last_close[:, None] * np.exp(cum + scale * band_hi)
    lower, upper = np.minimum(lower, close), np.maximum(upper, close)
    direction, conf = path_direction(p_right, cum, checked)
    return ForecastArrays(times, open_, high, low, close, lower, upper, conf, direction, cum, raw, sigma,
                          last_close, origin_features)


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
    proven edge), 0 (`flat`) with confidence 0.5. Beyond the validated horizon the last checked
    step's direction is carried forward, as its close is, with confidence 0.5: never checked."""
    direction = np.sign(cum).astype(int)
    conf = np.where(direction != 0, p_right, 0.5)
    if checked < cum.shape[1]:
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
    ) for i in range(steps)]
    return Forecast(direction=rows[-1].direction, confidence_avg=round(float(out.confidence[0, :steps].mean()), 4),
                    key_indicators=list(indicators), steps=rows)
