"""Fit the per-timeframe XGBoost model with Ray Train (`XGBoostTrainer` + `train_loop_per_worker`).

One booster predicts the three next-candle targets (close return, upper and lower shadow), each
standardised by its training standard deviation so that none dominates the loss. Histogram
trees, early stopping on the validation split. With more than one worker Ray Train shards the
data and XGBoost's collective joins the workers into one model.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from training.dataset import TARGETS

# The architecture document's configuration; a saved Ray Tune result overrides it.
DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "max_depth": 10,
    "learning_rate": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 1.0,
    "reg_lambda": 1.0,
}
EARLY_STOPPING_ROUNDS = 20
CHECKPOINT_MODEL = "model.ubj"


@dataclass
class FitResult:
    booster: xgb.Booster
    target_scale: list[float]
    params: dict[str, Any]
    best_iteration: int
    history: dict[str, list[float]] = field(default_factory=dict)


def booster_params(params: dict[str, Any], nthread: int) -> dict[str, Any]:
    return {
        "objective": "reg:squarederror",
        "tree_method": "hist",
        "eval_metric": "rmse",
        "max_depth": int(params["max_depth"]),
        "eta": float(params["learning_rate"]),
        "subsample": float(params["subsample"]),
        "colsample_bytree": float(params["colsample_bytree"]),
        "min_child_weight": float(params.get("min_child_weight", 1.0)),
        "lambda": float(params.get("reg_lambda", 1.0)),
        "multi_strategy": "one_output_per_tree",
        "nthread": nthread,
        "seed": 0,
    }


def to_dmatrix(frame: pd.DataFrame, features: list[str], scale: np.ndarray) -> xgb.DMatrix:
    labels = frame[TARGETS].to_numpy(np.float32) / scale.astype(np.float32)
    return xgb.DMatrix(frame[features].to_numpy(np.float32), label=labels, feature_names=features, nthread=-1)


def fit_local(train: pd.DataFrame, valid: pd.DataFrame, features: list[str], params: dict[str, Any],
              nthread: int = 0) -> FitResult:
    """Plain `xgboost.train` in this process (the baseline, and what each Ray worker runs)."""
    scale = target_scale(train)
    history: dict[str, Any] = {}
    booster = xgb.train(
        booster_params(params, nthread), to_dmatrix(train, features, scale),
        num_boost_round=int(params["n_estimators"]),
        evals=[(to_dmatrix(valid, features, scale), "valid")],
        early_stopping_rounds=EARLY_STOPPING_ROUNDS, evals_result=history, verbose_eval=False,
    )
    return FitResult(booster, scale.tolist(), dict(params), int(booster.best_iteration),
                     {"valid_rmse": history["valid"]["rmse"]})


def target_scale(train: pd.DataFrame) -> np.ndarray:
    std = train[TARGETS].to_numpy(np.float64).std(axis=0)
    return np.where(std > 0, std, 1.0)


def _train_loop_per_worker(config: dict[str, Any]) -> None:
    import ray.train

    features: list[str] = config["features"]
    scale = np.asarray(config["target_scale"])
    train = ray.train.get_dataset_shard("train").materialize().to_pandas()
    valid = ray.train.get_dataset_shard("valid").materialize().to_pandas()
    history: dict[str, Any] = {}
    booster = xgb.train(
        booster_params(config["params"], config["nthread"]), to_dmatrix(train, features, scale),
        num_boost_round=int(config["params"]["n_estimators"]),
        evals=[(to_dmatrix(valid, features, scale), "valid")],
        early_stopping_rounds=EARLY_STOPPING_ROUNDS, evals_result=history, verbose_eval=False,
    )
    metrics = {"valid_rmse": float(min(history["valid"]["rmse"])), "best_iteration": int(booster.best_iteration)}
    # One report at the end: Ray Train's per-iteration reporting costs seconds a round here.
    if ray.train.get_context().get_world_rank() == 0:
        with tempfile.TemporaryDirectory() as folder:
            booster.save_model(Path(folder) / CHECKPOINT_MODEL)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
    else:
        ray.train.report(metrics)


def fit_with_ray(train_ds: Any, valid_ds: Any, features: list[str], params: dict[str, Any],
                 scale: np.ndarray, storage_path: str | None = None, num_workers: int | None = None,
                 max_failures: int = 0) -> FitResult:
    """Fit on the cluster: one worker per two CPUs (at least one), each using its CPUs as threads."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.xgboost import XGBoostTrainer

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    workers = num_workers or max(1, cpus // 2)
    per_worker = max(1, cpus // workers)
    storage = storage_path or tempfile.mkdtemp(prefix="ray-train-")
    trainer = XGBoostTrainer(
        _train_loop_per_worker,
        train_loop_config={"features": features, "params": params, "target_scale": scale.tolist(),
                           "nthread": per_worker},
        scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": per_worker}),
        run_config=RunConfig(storage_path=str(Path(storage).resolve()), failure_config=FailureConfig(max_failures=max_failures)),
        datasets={"train": train_ds, "valid": valid_ds},
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train finished without a model checkpoint: {result.error}")
    booster = xgb.Booster()
    with result.checkpoint.as_directory() as folder:
        booster.load_model(Path(folder) / CHECKPOINT_MODEL)
    best = int(result.metrics.get("best_iteration", booster.num_boosted_rounds() - 1))
    return FitResult(booster, scale.tolist(), dict(params), best, {"valid_rmse": [float(result.metrics.get("valid_rmse", np.nan))]})


def load_tuned_params(model_dir: str | Path, timeframe: str) -> dict[str, Any]:
    """The best Ray Tune configuration saved for this timeframe, over the defaults; defaults if none."""
    path = Path(model_dir) / "tuning" / f"{timeframe}_best.json"
    if not path.exists():
        return dict(DEFAULT_PARAMS)
    saved = json.loads(path.read_text())
    return {**DEFAULT_PARAMS, **{k: v for k, v in saved.get("params", {}).items() if k in DEFAULT_PARAMS}}
