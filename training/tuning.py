"""Ray Tune sweep over the XGBoost parameters of one timeframe.

Trials run in parallel on the cluster's CPUs (one CPU each); ASHA stops the clearly worse ones
early. Every trial sees the same train and validation parts of the time split (the holdout is
never looked at), put in Ray's object store once. The best configuration is written to
`MODEL_DIR/tuning/<timeframe>_best.json`, where the next training picks it up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from clock import utc_now
from engine.tune import Between, report_trial, sweep
from features.build import feature_names
from market_data.source import utc
from storage.location import Location
from training.dataset import rows_local
from training.fitting import training_data
from training.models.xgb_booster import DEFAULT_PARAMS, BoosterSetup, Rows, target_scale, train_booster, tuned_params_key
from training.spec import FitSpec
from training.stages import StageTimer

REPORT_EVERY = 5  # trees between reports to Tune (and ASHA's time unit)


def search_space(max_trees: int) -> dict[str, Any]:
    return {
        "n_estimators": max_trees,
        "max_depth": Between(3, 11, integer=True),
        "learning_rate": Between(0.01, 0.3, log=True),
        "subsample": Between(0.5, 1.0),
        "colsample_bytree": Between(0.4, 1.0),
        "min_child_weight": Between(1.0, 200.0, log=True),
        "reg_lambda": Between(0.1, 20.0, log=True),
    }


class _Report(xgb.callback.TrainingCallback):
    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        if (epoch + 1) % REPORT_EVERY == 0:
            report_trial({"valid_rmse": float(evals_log["valid"]["rmse"][-1]), "trees": epoch + 1})
        return False


def _trial(config: dict[str, Any], train: Rows, valid: Rows, features: list[str], scale: np.ndarray) -> None:
    train_booster(train, valid, BoosterSetup(features, config, scale=scale), nthread=1, callbacks=[_Report()])


def tune_timeframe(spec: FitSpec, model_dir: str | Path, trials: int, max_trees: int = 200) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run the sweep over candles before `spec.end`, on the split the weekly job uses; returns
    the trials table and the saved best record."""
    data_dir, timeframe = spec.data_dir, spec.timeframe
    end = utc(spec.end)
    data = training_data(StageTimer(f"tune {timeframe}", echo=lambda _: None), spec)
    candles, split = data.candles, data.split  # the weekly job's split: the holdout is never looked at
    rows = rows_local(data_dir, list(candles), timeframe, end)
    parts = split.part(rows["timestamp"])
    train, valid = rows[parts == "train"], rows[parts == "valid"]
    features = feature_names(timeframe)
    result = sweep(_trial, search_space(max_trees), "valid_rmse", trials, max_trees // REPORT_EVERY,
                   f"tune_{timeframe}", train=Rows.of_frame(train, features), valid=Rows.of_frame(valid, features),
                   features=features, scale=target_scale(train))
    keep = ["valid_rmse", "trees", "training_iteration"] + [f"config/{k}" for k in DEFAULT_PARAMS if k != "n_estimators"]
    table = result.trials
    table = table[[c for c in keep if c in table.columns]].sort_values("valid_rmse").reset_index(drop=True)
    record = {
        "timeframe": timeframe,
        "params": {k: result.best_config[k] for k in DEFAULT_PARAMS},
        "valid_rmse": float(result.best_metrics["valid_rmse"]),
        "trials": int(len(table)),
        "symbols": len(candles),
        "as_of": end.isoformat(),
        "tuned_at": utc_now().isoformat(),
    }
    location = Location.of(model_dir)
    location.write_bytes(location.child(*tuned_params_key(timeframe)), json.dumps(record, indent=1).encode())
    return table, record
