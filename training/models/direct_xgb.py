"""Direct XGBoost: one booster for a few anchor horizons, interpolated to all 30.

Thirty outputs cost thirty trees a round (XGBoost's vector-leaf trees are slower still and have
no SHAP values); the z targets change smoothly with the horizon, so a booster predicts the anchor
horizons `ANCHORS` and the others are interpolated linearly between them. Fitted with the same
Ray Train `XGBoostTrainer` loop as the recursive model (early stopping on validation).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

import engine.train as engine
from engine.layout import RunOptions
from features.build import feature_names
from market_data.timeframes import HORIZON
from training.dataset import PART_CODES, PART_COLUMN
from training.models.direct_rows import DirectRows
from training.models.xgb_booster import (
    DEFAULT_PARAMS,
    BoosterSetup,
    FitResult,
    Rows,
    fit_local,
    fit_with_ray,
    target_scale,
    train_booster,
)

ANCHORS = (1, 2, 3, 5, 8, 13, 21, 30)
ANCHOR_TARGETS = [f"z_{h}" for h in ANCHORS]
# shallower than the recursive model's depth 10: eight outputs a round, and a noisier target
DIRECT_XGB_PARAMS: dict[str, Any] = {**DEFAULT_PARAMS, "max_depth": 6}
MODEL_FILE = "xgb_direct.ubj"
META_FILE = "xgb_direct.json"


def interpolation_matrix(anchors: tuple[int, ...] = ANCHORS, horizon: int = HORIZON) -> np.ndarray:
    """(anchors x horizon) weights: anchor outputs @ matrix = linear interpolation over h = 1..horizon."""
    eye = np.eye(len(anchors))
    return np.stack([np.interp(np.arange(1, horizon + 1), anchors, eye[i]) for i in range(len(anchors))])


def _frame(rows: DirectRows, features: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows.x, columns=features)
    for name, h in zip(ANCHOR_TARGETS, ANCHORS):
        frame[name] = rows.y[:, h - 1]
    return frame


class XGBDirect:
    name = "xgb_direct"
    default_params = DIRECT_XGB_PARAMS

    def __init__(self, booster: xgb.Booster, features: list[str], target_scale: list[float],
                 info: dict[str, Any] | None = None) -> None:
        self.booster = booster
        self.features = list(features)
        self.target_scale = np.asarray(target_scale, dtype=np.float64)
        self.info = dict(info or {})
        self._interp = interpolation_matrix()
        self.booster.set_param({"nthread": 1})

    @classmethod
    def input_features(cls, timeframe: str) -> list[str]:
        return feature_names(timeframe)

    @classmethod
    def fit(cls, train: DirectRows, valid: DirectRows, features: list[str], params: dict[str, Any],
            run: RunOptions) -> XGBDirect:
        """Early stopping on `valid`."""
        train_frame, valid_frame = _frame(train, features), _frame(valid, features)
        setup = BoosterSetup(features, params, tuple(ANCHOR_TARGETS))

        def on_ray_train() -> FitResult:
            rows = pd.concat([train_frame.assign(**{PART_COLUMN: np.int8(PART_CODES["train"])}),
                              valid_frame.assign(**{PART_COLUMN: np.int8(PART_CODES["valid"])})], ignore_index=True)
            return fit_with_ray(engine.dataset(rows), setup.scaled(target_scale(train_frame, ANCHOR_TARGETS)), run)

        fit = engine.fit_where(run, fit_local, on_ray_train, train_frame, valid_frame, setup)
        return cls(fit.booster, features, fit.target_scale,
                   {"params": fit.params, "best_iteration": fit.best_iteration, "anchors": list(ANCHORS)})

    def refit(self, rows: DirectRows, run: RunOptions) -> XGBDirect:
        """As many rounds as validation chose, the first fit's target scale; in one Ray task on Ray
        (direct rows are thinned to at most `MAX_TRAIN_ROWS`: too few for a worker group to pay)."""
        rounds = self.booster.num_boosted_rounds()
        setup = BoosterSetup(self.features, {**self.info["params"], "n_estimators": rounds}, tuple(ANCHOR_TARGETS),
                             scale=self.target_scale)
        booster, _ = engine.call(run, train_booster, Rows(rows.x, rows.y[:, [h - 1 for h in ANCHORS]]), None, setup)
        return XGBDirect(booster, self.features, self.target_scale.tolist(),
                         {**self.info, "refit": {"rows": len(rows), "rounds": rounds}})

    def _matrix(self, x: np.ndarray) -> xgb.DMatrix:
        return xgb.DMatrix(x.astype(np.float32, copy=False), feature_names=self.features)

    def summary(self) -> str:
        return f"{self.info['best_iteration'] + 1} rounds of {len(self.target_scale)} anchor horizons"

    def predict(self, x: np.ndarray, seq: np.ndarray) -> np.ndarray:
        anchors = self.booster.predict(self._matrix(x)).reshape(len(x), -1) * self.target_scale[None, :]
        return anchors @ self._interp

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-feature contributions (plus bias) to the anchors' mean, for the first row of `x`."""
        contribs = self.booster.predict(self._matrix(x[:1]), pred_contribs=True)
        contribs = contribs[0] if contribs.ndim == 3 else contribs  # (anchors, features + 1)
        return (contribs * self.target_scale[:, None]).mean(axis=0)

    def save(self, folder: Path) -> None:
        self.booster.save_model(folder / MODEL_FILE)
        (folder / META_FILE).write_text(json.dumps({"features": self.features, "target_scale": self.target_scale.tolist(),
                                                    "info": self.info}))

    @classmethod
    def load(cls, folder: Path) -> XGBDirect:
        meta = json.loads((folder / META_FILE).read_text())
        booster = xgb.Booster()
        booster.load_model(folder / MODEL_FILE)
        return cls(booster, meta["features"], meta["target_scale"], meta.get("info"))
