"""The recursive XGBoost forecaster: one booster predicts the next candle, thirty times.

At each step the model predicts the next candle (close log return, upper and lower shadow) from
the features of the current window; the predicted candle is appended, with open = previous
close and a high and low from the predicted shadows (so indicators see realistic ranges, not
flat candles), the oldest candle drops out, and the features are recomputed. Many forecasts run
in lockstep, their windows stacked into one feature pass per step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from engine.progress import report
from features.build import CandleStack, feature_names, stacked_tail
from features.explain import key_indicators
from market_data.timeframes import HORIZON, spec
from training.calibration import Calibration
from training.forecaster import ForecastArrays, ForecastModel, RawForecast, Windows, calibrated_arrays, check_steps, usable_sigma

ARTIFACT_MODEL = "model.ubj"


class RecursiveForecaster(ForecastModel):
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
            matrix = stacked_tail(CandleStack(o, h, lo, c, v, stamps, vwap), self.timeframe, 1)[:, 0, :]
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

    def predict_windows(self, windows: Windows, steps: int = HORIZON, shift: np.ndarray | None = None) -> ForecastArrays:
        check_steps(steps)
        rets, ups, downs, feats, times = self.raw_paths(windows, steps)
        sigma = usable_sigma(feats[self.sigma_feature].to_numpy(np.float64))
        return calibrated_arrays(RawForecast(np.cumsum(rets, axis=1), ups, downs, sigma, times, feats),
                                 windows.close[:, -1], self.calibration, windows.close, shift)

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
    def from_artifact(cls, folder: Path, fields: dict[str, Any], calibration: Calibration) -> RecursiveForecaster:
        booster = xgb.Booster()
        booster.load_model(folder / ARTIFACT_MODEL)
        return cls(booster, fields["features"], fields["timeframe"], fields["target_scale"], calibration,
                   fields.get("meta"))
