"""The recursive XGBoost model of one timeframe: training rows with Ray Data, the fit on Ray
Train, and the calibration of its 30-step recursive forecasts on validation origins."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import engine.train as engine
from features.build import feature_names
from training.calibration import fit_calibration, scaled_naive_moves
from training.dataset import TARGETS, Split, rows_dataset, rows_local, validated_horizon
from training.evaluation import select_origins
from training.forecaster import HORIZON, Forecaster
from training.spec import CALIBRATION_ORIGINS, FitSpec
from training.stages import StageTimer, candles_and_split
from training.xgb_train import fit_local, fit_with_ray, target_scale


class _PartFilter:
    """The rows of one part of the split; with `before`, every row before that time instead (a
    refit's train, gap and validation rows)."""

    def __init__(self, split: Split, part: str, before: pd.Timestamp | None = None) -> None:
        self.split, self.part, self.before = split, part, before

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        if self.before is not None:
            return batch[batch["timestamp"] < self.before]
        return batch[self.split.part(batch["timestamp"]) == self.part]


def fit_model(spec: FitSpec, split: Split, refit_of: Forecaster | None = None) -> tuple[Forecaster, dict[str, int]]:
    """Fit the booster on the train part (early stopping on valid) and wrap it in a forecaster.

    With `refit_of` (a model fitted and calibrated on this split), fit again on everything
    before the end of validation, with the parameters and the number of trees validation chose
    for it: the same model, having seen the most recent candles the evaluation no longer needs."""
    features = feature_names(spec.timeframe)
    params, before = spec.params, None
    if refit_of is not None:
        params = {**refit_of.meta["params"], "n_estimators": int(refit_of.meta["best_iteration"]) + 1}
        before = split.valid_end
    if spec.use_ray:
        rows = rows_dataset(spec.data_dir, spec.tickers, spec.timeframe, spec.end).materialize()
        train_ds = rows.map_batches(_PartFilter(split, "train", before), batch_format="pandas")
        valid_ds = rows.map_batches(_PartFilter(split, "valid"), batch_format="pandas")
        if spec.shuffle_targets:
            train_ds = _shuffled(train_ds)
        train_ds, valid_ds = train_ds.materialize(), valid_ds.materialize()
        counts = {"train_rows": train_ds.count(), "valid_rows": valid_ds.count()}
        if not counts["train_rows"] or not counts["valid_rows"]:
            raise ValueError(f"{spec.timeframe}: the split left {counts}; more history is needed")
        scale = target_scale(train_ds.select_columns(TARGETS).to_pandas())
        fit = fit_with_ray(train_ds, valid_ds, features, params, scale, spec.run)
    else:
        rows = rows_local(spec.data_dir, spec.tickers, spec.timeframe, spec.end)
        parts = split.part(rows["timestamp"])
        train = rows[parts == "train"] if before is None else rows[rows["timestamp"] < before]
        valid = rows[parts == "valid"]
        if spec.shuffle_targets:
            train = train.assign(**{t: np.random.default_rng(0).permutation(train[t].to_numpy()) for t in TARGETS})
        counts = {"train_rows": len(train), "valid_rows": len(valid)}
        if not len(train) or not len(valid):
            raise ValueError(f"{spec.timeframe}: the split left {counts}; more history is needed")
        fit = fit_local(train, valid, features, params)
    meta = {"params": fit.params, "best_iteration": fit.best_iteration, "split": split.as_dict(), **counts}
    if refit_of is not None:  # the trees validation chose, all of them (early stopping cannot judge a refit)
        meta["best_iteration"] = fit.booster.num_boosted_rounds() - 1
        meta["refit"] = {"train_end": before.isoformat() if before is not None else None,
                         "first_fit_train_end": split.train_end.isoformat()}
    return Forecaster(fit.booster, features, spec.timeframe, fit.target_scale, meta=meta), counts


def _shuffled(dataset: Any) -> Any:
    """The train rows with their targets permuted (a model that can learn nothing real)."""
    frame = dataset.to_pandas()
    rng = np.random.default_rng(0)
    return engine.dataset(frame.assign(**{t: rng.permutation(frame[t].to_numpy()) for t in TARGETS}))


def calibrate(forecaster: Forecaster, candles: dict[str, pd.DataFrame], split: Split,
              max_origins: int = CALIBRATION_ORIGINS) -> int:
    horizon = validated_horizon(forecaster.timeframe)
    origins = select_origins(candles, split.valid_start, split.valid_end, forecaster.window, stride=1,
                             max_origins=max_origins, horizon=horizon)
    raw = forecaster.predict_windows(origins.windows, horizon)
    naive_moves = scaled_naive_moves(candles, split.valid_start, split.valid_end, forecaster.timeframe, horizon)
    forecaster.calibration = fit_calibration(raw.raw_return, origins.actual_close, raw.sigma, naive_moves,
                                             origins.windows.stamps[:, -1]).extended(HORIZON)
    return len(origins)


def fit_and_calibrate(timer: StageTimer, spec: FitSpec) -> tuple[Forecaster, dict[str, pd.DataFrame], Split]:
    """Candles up to `spec.end`, the split, the fit and the calibration: what training and backtests share."""
    candles, split = candles_and_split(timer, spec)
    fitted = spec.with_tickers(list(candles))
    forecaster, _ = timer.run("fit", lambda: fit_model(fitted, split),
                              lambda r: f"{r[1]['train_rows']} train / {r[1]['valid_rows']} valid rows, "
                                        f"{r[0].meta['best_iteration'] + 1} trees")
    timer.run("calibrate", lambda: calibrate(forecaster, candles, split, spec.calibration_origins),
              lambda n: f"{n} validation origins")
    return forecaster, candles, split


def refit(timer: StageTimer, spec: FitSpec, split: Split, fitted: Forecaster) -> Forecaster:
    """`fitted` fitted again on train + validation (`fit_model(refit_of=...)`), keeping its
    calibration: the residuals, shrinkage and confidence fitted on forecasts of data the first
    fit had not seen, the only honest ones there are; the refit, having seen more (and more
    recent) data, is expected to do at least as well as they say (bench.honesty measures it)."""
    forecaster, counts = timer.run("refit", lambda: fit_model(spec, split, fitted),
                                   lambda r: f"{r[1]['train_rows']} rows to {split.valid_end:%Y-%m-%d %H:%M}, "
                                             f"{r[0].meta['best_iteration'] + 1} trees")
    forecaster.calibration = fitted.calibration
    return forecaster

