"""The direct forecaster: direct models (XGBoost, random forest, LSTM) combined by weights.

Each member predicts the 30 z targets at once from the features at the origin (and the LSTM from
the last rows before it); the weighted sum is turned back into cumulative log returns with the
origin's volatility, then calibrated on validation origins exactly like the recursive model
(shrink toward naive, the band of `training.band`, logistic confidence). One feature pass per
forecast instead of thirty: serving is fast.

Members are the registry's (`training.candidates.MEMBERS`), loaded by name
(`training.models.member`). Weights are the specified 40 % LSTM + 40 % XGBoost + 20 % random
forest, or fitted on validation origins (non-negative least squares, summing to one). A single
member with weight one is a forecaster too: that is how the backtest scores each direct model on
its own.

High and low have no direct model: each step's shadows are the median shadows of the origin's
last 20 candles, relative to the candle body, as the recursive model's are relative to its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.build import feature_names, stacked_tail
from features.explain import key_indicators
from market_data.timeframes import HORIZON, spec
from training.calibration import Calibration, horizon_scale
from training.forecaster import ForecastArrays, ForecastModel, RawForecast, Windows, calibrated_arrays, check_steps, usable_sigma
from training.models.direct_rows import SEQ_LEN, sequence_features
from training.models.member import MEMBER_KINDS, Member, load_member

FIXED_WEIGHTS = {"lstm": 0.4, "xgb_direct": 0.4, "rf": 0.2}
SHADOW_CANDLES = 20


def fit_weights(member_z: dict[str, np.ndarray], actual_z: np.ndarray) -> dict[str, float]:
    """Non-negative weights summing to one that best fit `actual_z` (least squares over every
    origin and horizon); the fixed weights when no member explains anything."""
    from scipy.optimize import nnls

    names = sorted(member_z)
    design = np.column_stack([member_z[n].ravel() for n in names])
    target = actual_z.ravel()
    ok = np.isfinite(design).all(axis=1) & np.isfinite(target)
    weights, _ = nnls(design[ok], target[ok])
    if weights.sum() <= 0:
        return {n: FIXED_WEIGHTS.get(n, 0.0) for n in names}
    return {n: round(float(w / weights.sum()), 6) for n, w in zip(names, weights)}


def recent_shadows(windows: Windows, candles: int = SHADOW_CANDLES) -> tuple[np.ndarray, np.ndarray]:
    """Median upper and lower shadow (log, >= 0) of each window's last `candles` candles."""
    o, h, lo, c = (a[:, -candles:] for a in (windows.open, windows.high, windows.low, windows.close))
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.log(h / np.maximum(o, c))
        down = np.log(np.minimum(o, c) / lo)
    up = np.nan_to_num(np.nanmedian(np.where(np.isfinite(up), up, np.nan), axis=1), nan=0.0)
    down = np.nan_to_num(np.nanmedian(np.where(np.isfinite(down), down, np.nan), axis=1), nan=0.0)
    return np.maximum(up, 0.0), np.maximum(down, 0.0)


class DirectForecaster(ForecastModel):
    kind = "direct-ensemble"

    def __init__(self, members: dict[str, Member], weights: dict[str, float], timeframe: str,
                 calibration: Calibration | None = None, meta: dict[str, Any] | None = None) -> None:
        unknown = set(weights) - set(members)
        if unknown:
            raise ValueError(f"weights name models that are not members: {sorted(unknown)}")
        super().__init__(timeframe, feature_names(timeframe), calibration, meta)
        self.members = dict(members)
        self.weights = {n: float(w) for n, w in weights.items() if w > 0}
        if not self.weights:
            raise ValueError("a direct forecaster needs at least one member with a positive weight")
        self._seq_index = [self.features.index(n) for n in sequence_features(timeframe)]
        self._sigma_index = self.features.index(self.profile.volatility_feature)

    # -- what the members see -------------------------------------------------------------------
    def _tail(self, windows: Windows) -> np.ndarray:
        """(origins x SEQ_LEN x features), computed once per set of windows and shared."""
        key = ("tail", self.timeframe, SEQ_LEN)
        if key not in windows.derived:
            windows.derived[key] = stacked_tail(windows, self.timeframe, SEQ_LEN)
        return windows.derived[key]

    def member_z(self, windows: Windows) -> dict[str, np.ndarray]:
        """Each weighted member's (origins x 30) z forecast; cached on `windows` by member object."""
        tail = self._tail(windows)
        x, seq = tail[:, -1, :], tail[:, :, self._seq_index]
        out = {}
        for name in self.weights:
            key = ("z", id(self.members[name]))
            if key not in windows.derived:
                windows.derived[key] = self.members[name].predict(x, seq)
            out[name] = windows.derived[key]
        return out

    def sigma(self, windows: Windows) -> np.ndarray:
        return usable_sigma(self._tail(windows)[:, -1, self._sigma_index].astype(np.float64))

    def raw_return(self, windows: Windows, steps: int = HORIZON) -> np.ndarray:
        """The weighted members' cumulative log returns before calibration (origins x steps)."""
        members = self.member_z(windows)
        z = sum(w * members[n] for n, w in self.weights.items())
        return (z * horizon_scale(self.sigma(windows), HORIZON))[:, :steps]

    # -- forecasts --------------------------------------------------------------------------------
    def predict_windows(self, windows: Windows, steps: int = HORIZON, shift: np.ndarray | None = None) -> ForecastArrays:
        check_steps(steps)
        raw = self.raw_return(windows, steps)
        up, down = recent_shadows(windows)
        ups, downs = np.repeat(up[:, None], steps, axis=1), np.repeat(down[:, None], steps, axis=1)
        offset = spec(self.timeframe).offset()
        last = pd.DatetimeIndex(windows.stamps[:, -1])
        times = np.column_stack([(last + offset * k).to_numpy("datetime64[ms]") for k in range(1, steps + 1)])
        feats = pd.DataFrame(self._tail(windows)[:, -1, :], columns=self.features)
        return calibrated_arrays(RawForecast(raw, ups, downs, self.sigma(windows), times, feats), windows.close[:, -1],
                                 self.calibration, windows.close, shift)

    # -- what serving adds, and the artifact ------------------------------------------------------
    def explain(self, out: ForecastArrays, top: int) -> list[str]:
        """The key indicators of the first weighted member that can attribute its forecast to
        features (the direct XGBoost's SHAP values); none where no member can."""
        found = (getattr(self.members[n], "contributions", None) for n in self.weights)
        attribute = next((f for f in found if f is not None), None)
        if attribute is None:
            return []
        contribs = attribute(out.origin_features.to_numpy(np.float32))
        return key_indicators(contribs, self.features, self.timeframe, top)

    def artifact_fields(self) -> dict[str, Any]:
        return {"weights": self.weights}

    def save_files(self, folder: Path) -> None:
        for name in self.weights:
            (folder / name).mkdir()
            self.members[name].save(folder / name)

    @classmethod
    def from_artifact(cls, folder: Path, fields: dict[str, Any], calibration: Calibration) -> DirectForecaster:
        unknown = set(fields["weights"]) - set(MEMBER_KINDS)
        if unknown:
            raise ValueError(f"unknown member models {sorted(unknown)}; known: {sorted(MEMBER_KINDS)}")
        members = {name: load_member(name, folder / name) for name in fields["weights"]}
        return cls(members, fields["weights"], fields["timeframe"], calibration, fields.get("meta"))
