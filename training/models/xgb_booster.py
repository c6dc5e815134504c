"""Fit the per-timeframe XGBoost model with Ray Train (`XGBoostTrainer` + `train_loop_per_worker`).

One booster predicts the three next-candle targets (close return, upper and lower shadow), each
standardised by its training standard deviation so that none dominates the loss. Histogram
trees, early stopping on the validation split. With more than one worker Ray Train shards the
data and XGBoost's collective joins the workers into one model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import xgboost as xgb

import engine.train as engine
from engine.layout import Checkpoints, RunOptions
from engine.progress import report
from storage.location import Location
from training.dataset import PART_CODES, PART_COLUMN, TARGETS

# The product's specified configuration; a saved Ray Tune result overrides it.
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
CHECKPOINT_REFIT = "refit.ubj"
XGB_CHECKPOINTS = Checkpoints(every=50)  # rounds; each checkpoint costs about a second in Ray Train


@dataclass(frozen=True)
class BoosterSetup:
    """What one booster is fitted on: its input columns, its targets (a control permutes them)
    and its parameters; `scale` standardises the targets (each one's spread on the train rows,
    so that trees weigh them alike), computed from the train rows where it is None."""

    features: list[str]
    params: dict[str, Any]
    targets: tuple[str, ...] = tuple(TARGETS)
    shuffle_targets: bool = False
    scale: np.ndarray | None = field(default=None, compare=False)

    def scaled(self, scale: np.ndarray) -> BoosterSetup:
        return replace(self, scale=np.asarray(scale, dtype=np.float64))

    @property
    def target_scale(self) -> np.ndarray:
        if self.scale is None:
            raise ValueError("the booster's target scale is computed from the train rows before fitting")
        return self.scale


@dataclass
class FitResult:
    booster: xgb.Booster
    target_scale: list[float]
    params: dict[str, Any]
    best_iteration: int
    history: dict[str, list[float]] = field(default_factory=dict)
    refit: xgb.Booster | None = None  # the same trees fitted again on train + purge + valid (`refit_booster`)


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


@dataclass(frozen=True)
class Rows:
    """Training rows as XGBoost reads them: the features as one float32 matrix and the targets,
    sorted by (symbol, timestamp) where the rows carry them. Ray Data hands a worker its rows in
    no fixed order; sorted, the same rows give the same model on Ray and in one process. A worker
    builds them straight from its shard's Arrow table (`of_arrow`): one float32 matrix, no pandas
    copy of the ~200 feature columns on the way."""

    x: np.ndarray  # (rows, features) float32
    y: np.ndarray  # (rows, targets) float32

    @classmethod
    def of_frame(cls, frame: pd.DataFrame, features: list[str], targets: list[str] = TARGETS) -> Rows:
        order = _order(*_keys(frame.columns, lambda k: frame[k].to_numpy()))
        x, y = frame[features].to_numpy(np.float32), frame[targets].to_numpy(np.float32)
        return cls(x, y) if order is None else cls(x[order], y[order])

    @classmethod
    def of_arrow(cls, table: pa.Table, features: list[str], targets: list[str] = TARGETS,
                 parts: tuple[str, ...] | None = None) -> Rows:
        """With `parts` (names of `PART_CODES`), only the rows of those parts of the split (the
        table's `PART_COLUMN`), picked while the matrix is built: no filtered copy of the table."""
        pick = np.arange(table.num_rows)
        if parts is not None:
            codes = [PART_CODES[p] for p in parts]
            pick = np.flatnonzero(np.isin(table.column(PART_COLUMN).to_numpy(), codes))
        order = _order(*_keys(table.column_names, lambda k: table.column(k).to_numpy()[pick]))
        if order is not None:
            pick = pick[order]
        x = np.empty((len(pick), len(features)), np.float32)
        for j, name in enumerate(features):  # nulls (Ray Data's NaN) come back as NaN
            x[:, j] = table.column(name).to_numpy()[pick]
        y = np.column_stack([table.column(t).to_numpy()[pick] for t in targets]).astype(np.float32)
        return cls(x, y)

    def target_scale(self) -> np.ndarray:
        """Each target's standard deviation (1 where constant), summed in the rows' (sorted)
        order, so the same rows give the same scale to the last bit wherever they are fitted."""
        std = self.y.astype(np.float64).std(axis=0)
        return np.where(std > 0, std, 1.0)

    def shuffled(self) -> Rows:
        """The targets permuted, each with a fresh seed-0 generator (a control that can learn
        nothing real; the same permutation on Ray and in one process: the rows are sorted)."""
        y = np.column_stack([np.random.default_rng(0).permutation(self.y[:, j]) for j in range(self.y.shape[1])])
        return Rows(self.x, y.astype(np.float32))

    def dmatrix(self, features: list[str], scale: np.ndarray, ref: xgb.QuantileDMatrix | None = None) -> xgb.QuantileDMatrix:
        """Quantised straight from the float32 matrix (no second full-precision copy inside
        XGBoost); validation takes the bins of training (`ref`)."""
        return xgb.QuantileDMatrix(self.x, label=self.y / scale.astype(np.float32), feature_names=features,
                                   nthread=-1, ref=ref)


def _keys(columns: Any, column: Callable[[str], np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
    if "symbol" not in columns or "timestamp" not in columns:
        return None, None
    stamp = np.asarray(column("timestamp"))
    if stamp.dtype == object:  # tz-aware pandas timestamps
        stamp = pd.DatetimeIndex(stamp).as_unit("ms").asi8
    return np.asarray(column("symbol"), dtype=object), stamp.astype("datetime64[ms]").view(np.int64)


def _order(symbol: np.ndarray | None, stamp: np.ndarray | None) -> np.ndarray | None:
    if symbol is None or stamp is None:
        return None
    _, codes = np.unique(symbol, return_inverse=True)  # codes in the symbols' sorted order
    return np.lexsort((stamp, codes))  # by symbol, then time; stable


def train_booster(train: Rows, valid: Rows | None, setup: BoosterSetup, nthread: int = 0,
                  resume: xgb.Booster | None = None,
                  callbacks: list[xgb.callback.TrainingCallback] | None = None) -> tuple[xgb.Booster, dict[str, Any]]:
    """The one `xgboost.train` of the project (the weekly job, the backtest, Ray Train's workers,
    tuning's trials): standardised targets, early stopping on `valid`, up to `n_estimators` trees
    in all (a resumed booster's count toward them). Returns the booster cut to its best round (early
    stopping keeps the rounds it tried past the best, and a booster predicts with every round it
    holds) and the validation history. Without `valid` (a refit), exactly `n_estimators` trees and
    no evaluation."""
    features, params, scale = setup.features, setup.params, setup.target_scale
    history: dict[str, Any] = {}
    done = 0 if resume is None else resume.num_boosted_rounds()
    rounds = max(0, int(params["n_estimators"]) - done)
    callbacks = [*(callbacks or []), _Progress(done + rounds, "trees" if valid is not None else "trees of the refit")]
    dtrain = train.dmatrix(features, scale)
    evals = [] if valid is None else [(valid.dmatrix(features, scale, ref=dtrain), "valid")]
    booster = xgb.train(
        booster_params(params, nthread), dtrain,
        num_boost_round=rounds,
        evals=evals, xgb_model=resume,
        early_stopping_rounds=EARLY_STOPPING_ROUNDS if evals else None, evals_result=history, verbose_eval=False,
        callbacks=callbacks,
    )
    best = booster.attr("best_iteration")
    if best is not None and booster.num_boosted_rounds() > int(best) + 1:
        score = booster.attr("best_score")
        booster = booster[: int(best) + 1]
        booster.set_attr(best_iteration=best, best_score=score)
    return booster, history


def refit_booster(rows: Rows, first: xgb.Booster, setup: BoosterSetup, nthread: int = 0) -> xgb.Booster:
    """`first`'s parameters and trees (as many as validation chose) fitted again on `rows`,
    every row before the end of validation, with the same target scale: the same model, having
    seen the most recent candles. No early stopping and no evaluation: validation is now
    training data and cannot judge."""
    again = replace(setup, params={**setup.params, "n_estimators": first.num_boosted_rounds()})
    booster, _ = train_booster(rows, None, again, nthread)
    return booster


def fit_local(train: pd.DataFrame, valid: pd.DataFrame, setup: BoosterSetup, nthread: int = 0,
              refit_rows: Callable[[], pd.DataFrame] | None = None) -> FitResult:
    """The fit in this process (the baseline the Ray path is measured against); with
    `refit_rows` (every row before the end of validation, built when the first fit is done, so
    that the two fits' matrices are not held at once), the refit too (`refit_booster`). A
    control (`setup.shuffle_targets`) fits on permuted train targets (and is never refitted)."""
    features, targets = setup.features, list(setup.targets)
    train_rows, valid_rows = Rows.of_frame(train, features, targets), Rows.of_frame(valid, features, targets)
    setup = setup.scaled(train_rows.target_scale())
    booster, history = train_booster(train_rows.shuffled() if setup.shuffle_targets else train_rows, valid_rows,
                                     setup, nthread)
    del train_rows, valid_rows
    refit = None if refit_rows is None else refit_booster(Rows.of_frame(refit_rows(), features, targets), booster,
                                                          setup, nthread)
    return FitResult(booster, setup.target_scale.tolist(), dict(setup.params), int(booster.best_iteration),
                     {"valid_rmse": history["valid"]["rmse"]}, refit)


def target_scale(train: pd.DataFrame, targets: list[str] = TARGETS) -> np.ndarray:
    """`Rows.target_scale` of a frame's rows (in their sorted order where they carry symbol and time)."""
    return Rows.of_frame(train, [], targets).target_scale()


def _save(booster: xgb.Booster, refit: xgb.Booster | None = None) -> Callable[[Path], None]:
    def save(folder: Path) -> None:
        booster.save_model(folder / CHECKPOINT_MODEL)
        if refit is not None:
            refit.save_model(folder / CHECKPOINT_REFIT)
    return save


def _load(folder: Path, name: str = CHECKPOINT_MODEL) -> xgb.Booster:
    booster = xgb.Booster()
    booster.load_model(folder / name)
    return booster


def _load_both(folder: Path) -> tuple[xgb.Booster, xgb.Booster | None]:
    return _load(folder), _load(folder, CHECKPOINT_REFIT) if (folder / CHECKPOINT_REFIT).exists() else None


class _Progress(xgb.callback.TrainingCallback):
    """Trees so far, for the stage's progress line (`training.progress`; early stopping may end sooner)."""

    def __init__(self, total: int, unit: str) -> None:
        self.total, self.unit = total, unit

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        report(model.num_boosted_rounds(), self.total, self.unit)
        return False


class _Checkpoints(xgb.callback.TrainingCallback):
    """Checkpoint every `every` rounds, so a restarted worker resumes instead of starting over.
    (Each report costs about a second in Ray Train, so not every round.)"""

    def __init__(self, every: int, fail_once_after: int | None) -> None:
        self.every, self.fail_once_after = every, fail_once_after

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        rounds = model.num_boosted_rounds()
        if self.every and rounds % self.every == 0:
            engine.report({"valid_rmse": float(evals_log["valid"]["rmse"][-1]), "rounds": rounds}, _save(model))
            if self.fail_once_after is not None and rounds >= self.fail_once_after:
                raise RuntimeError(f"injected worker failure after {rounds} rounds (fault-tolerance test)")
        return False


def _train_loop_per_worker(config: dict[str, Any]) -> None:
    features: list[str] = config["features"]
    scale = np.asarray(config["target_scale"])
    targets: list[str] = config.get("targets", TARGETS)

    table = engine.shard("rows")  # every part of the split this worker holds, labelled by PART_COLUMN
    train, valid = Rows.of_arrow(table, features, targets, ("train",)), Rows.of_arrow(table, features, targets, ("valid",))
    if config.get("shuffle_targets"):
        train = train.shuffled()
    resumed = engine.resumed(_load)  # a restart after a failure: continue from the last checkpoint
    done = 0 if resumed is None else resumed.num_boosted_rounds()
    # fault injection for tests: fail once, in the first attempt only
    fail_after = config.get("fail_once_after") if resumed is None else None
    setup = BoosterSetup(features, config["params"], tuple(targets), scale=scale)
    booster, history = train_booster(train, valid, setup, config["nthread"], resume=resumed,
                                     callbacks=[_Checkpoints(config.get("checkpoint_every", 0), fail_after)])
    del train, valid  # the refit builds its own matrix from the table
    rmse = history.get("valid", {}).get("rmse", [np.nan])
    best = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
    metrics = {"valid_rmse": float(np.nanmin(rmse)), "best_iteration": best, "rounds": booster.num_boosted_rounds(),
               "resumed_from": done}
    refit = None
    if config.get("refit"):  # the same worker group and shards: no second start-up, no second read of the rows
        engine.report(metrics, _save(booster))  # a failure during the refit resumes from the finished first fit
        refit = refit_booster(Rows.of_arrow(table, features, targets, ("train", "purge", "valid")), booster, setup,
                              config["nthread"])
    engine.report(metrics, _save(booster, refit))


def fit_with_ray(rows_ds: Any, setup: BoosterSetup, run: RunOptions, refit: bool = False,
                 checkpoints: Checkpoints = XGB_CHECKPOINTS) -> FitResult:
    """Fit on the cluster (`engine.layout.worker_layout`: one worker per two CPUs by default) from
    one dataset of every row the fit uses, each labelled with its part of the split
    (`PART_COLUMN`): the rows sit in the object store once, and each worker picks its parts
    while building its matrix. With `run.max_failures`, Ray Train restarts failed workers, which
    resume from the last checkpoint (every `checkpoints.every` rounds). With `refit`, the same
    workers then refit on train + purge + valid (`refit_booster`)."""
    scale = setup.target_scale
    (booster, again), metrics = engine.fit_xgboost(
        _train_loop_per_worker,
        {"features": setup.features, "params": setup.params, "target_scale": scale.tolist(),
         "checkpoint_every": checkpoints.every, "fail_once_after": checkpoints.fail_once_after,
         "targets": list(setup.targets), "refit": refit, "shuffle_targets": setup.shuffle_targets},
        {"rows": rows_ds}, run, _load_both, "XGBoost model")
    best = int(metrics.get("best_iteration", booster.num_boosted_rounds() - 1))
    return FitResult(booster, scale.tolist(), dict(setup.params), best,
                     {"valid_rmse": [float(metrics.get("valid_rmse", np.nan))],
                      "resumed_from": [int(metrics.get("resumed_from", 0))]}, again)


def tuned_params_key(timeframe: str) -> tuple[str, str]:
    """Where under MODEL_DIR `jobs.tune` saves, and training finds, the best configuration."""
    return "tuning", f"{timeframe}_best.json"


def load_tuned_params(model_dir: str | Path, timeframe: str) -> dict[str, Any]:
    """The best Ray Tune configuration saved for this timeframe, over the defaults; defaults if none."""
    location = Location.of(model_dir)
    path = location.child(*tuned_params_key(timeframe))
    if not location.is_file(path):
        return dict(DEFAULT_PARAMS)
    saved = json.loads(location.read_bytes(path))
    return {**DEFAULT_PARAMS, **{k: v for k, v in saved.get("params", {}).items() if k in DEFAULT_PARAMS}}
