"""Fitting the recursive XGBoost model of one timeframe: training rows with Ray Data, the fit
(and its refit) on Ray Train, in one Ray task, or in this process (`RunOptions.placement`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

import engine.train as engine
from features.build import feature_names
from training.dataset import PART_CODES, PART_COLUMN, TARGETS, Split, rows_dataset, rows_local
from training.estimator import Fits, TrainingData
from training.forecaster import ForecastModel
from training.models.recursive_forecaster import RecursiveForecaster
from training.models.xgb_booster import DEFAULT_PARAMS, BoosterSetup, FitResult, fit_local, fit_with_ray, target_scale
from training.spec import FitSpec
from training.stages import StageTimer


class _PartLabels:
    """Each row's part of the split (`Split.codes`) as a small int8 column, in Arrow (no pandas
    copy of the ~200 feature columns); rows of no part the fit uses (the holdout and its gap,
    and the purge gap unless refitting) dropped."""

    def __init__(self, split: Split, refit: bool) -> None:
        self.split = split
        self.keep = [PART_CODES[p] for p in (("train", "purge", "valid") if refit else ("train", "valid"))]

    def __call__(self, batch: pa.Table) -> pa.Table:
        codes = self.split.codes(batch.column("timestamp").to_numpy())
        labelled = batch.append_column(PART_COLUMN, pa.array(codes, pa.int8()))
        return labelled.filter(pa.array(np.isin(codes, self.keep)))


def fit_model(spec: FitSpec, split: Split, candles: int) -> tuple[RecursiveForecaster, RecursiveForecaster | None, dict[str, int]]:
    """Fit the booster on the train part (early stopping on valid) and wrap it in a forecaster;
    with `spec.refit`, also its refit: the same parameters and trees fitted again on everything
    before the end of validation (`xgb_train.refit_booster`), by the same workers on the same
    rows. A control on shuffled targets is never refitted (it is never deployed). On Ray, a fit
    of fewer than `spec.one_task_below` `candles` runs as one Ray task (`engine.layout`)."""
    features = feature_names(spec.timeframe)
    refit = spec.refit and not spec.shuffle_targets
    fit, counts = engine.fit_where(spec.run, _fit_in_one_process, lambda: _fit_on_ray_train(spec, split, refit),
                                   spec, split, refit, candles=candles)
    gap_rows = counts.pop("gap_rows")
    meta = {"params": fit.params, "best_iteration": fit.best_iteration, "split": split.as_dict(), **counts}
    first = RecursiveForecaster(fit.booster, features, spec.timeframe, fit.target_scale, meta=meta)
    if fit.refit is None:
        return first, None, counts
    refit_rows = counts["train_rows"] + gap_rows + counts["valid_rows"]
    refit_meta = {**meta, "best_iteration": fit.refit.num_boosted_rounds() - 1, "train_rows": refit_rows,
                  "refit": {"train_end": split.valid_end.isoformat(), "first_fit_train_end": split.train_end.isoformat()}}
    return first, RecursiveForecaster(fit.refit, features, spec.timeframe, fit.target_scale, meta=refit_meta), counts


def params_of(spec: FitSpec) -> dict[str, Any]:
    """The recursive XGBoost's parameters: the spec's, else the booster's defaults."""
    return dict(DEFAULT_PARAMS) if spec.params is None else spec.params


def _fit_on_ray_train(spec: FitSpec, split: Split, refit: bool) -> tuple[FitResult, dict[str, int]]:
    """Rows on Ray Data, the fit (and its refit) on a Ray Train worker group: the rows sit in the
    object store once, labelled with their part; the workers pick their parts."""
    rows = rows_dataset(spec.data_dir, spec.tickers, spec.timeframe, spec.end).map_batches(
        _PartLabels(split, refit), batch_format="pyarrow").materialize()
    keys = rows.select_columns(["symbol", "timestamp", PART_COLUMN, *TARGETS]).to_pandas()
    part = keys[PART_COLUMN].to_numpy()
    counts = {"train_rows": int((part == PART_CODES["train"]).sum()),
              "valid_rows": int((part == PART_CODES["valid"]).sum()),
              "gap_rows": int((part == PART_CODES["purge"]).sum())}
    _check(spec, counts)
    scale = target_scale(keys[part == PART_CODES["train"]])  # in (symbol, time) order, as in one process
    del keys
    setup = BoosterSetup(feature_names(spec.timeframe), params_of(spec), shuffle_targets=spec.shuffle_targets, scale=scale)
    return fit_with_ray(rows, setup, spec.run, refit=refit), counts


def _fit_in_one_process(spec: FitSpec, split: Split, refit: bool, nthread: int = 0) -> tuple[FitResult, dict[str, int]]:
    """Rows, fit and refit here: the plain path, and the body of a one-task fit on Ray."""
    rows = rows_local(spec.data_dir, spec.tickers, spec.timeframe, spec.end)
    train, valid = split.rows_of(rows, "train"), split.rows_of(rows, "valid")
    counts = {"train_rows": len(train), "valid_rows": len(valid),
              "gap_rows": len(split.rows_of(rows[["timestamp"]], "purge")) if refit else 0}
    _check(spec, counts)
    setup = BoosterSetup(feature_names(spec.timeframe), params_of(spec), shuffle_targets=spec.shuffle_targets)
    return fit_local(train, valid, setup, nthread,
                     refit_rows=(lambda: split.rows_of(rows, "refit")) if refit else None), counts


def _check(spec: FitSpec, counts: dict[str, int]) -> None:
    if not counts["train_rows"] or not counts["valid_rows"]:
        raise ValueError(f"{spec.timeframe}: the split left {counts}; more history is needed")


class RecursiveXGB:
    """The recursive XGBoost as an `Estimator`: one booster for the next candle; its refit is fitted
    alongside the first fit, by the same workers on the same rows (`fit_model`)."""

    names = ("xgboost",)

    def usable(self, timeframe: str) -> bool:
        return True  # checks as many horizons as the history allows (`validated_horizon`)

    def fit(self, timer: StageTimer, data: TrainingData, names: tuple[str, ...]) -> Fits:
        spec, split = data.spec, data.split
        count = sum(map(len, data.candles.values()))

        def describe(r: tuple[RecursiveForecaster, RecursiveForecaster | None, dict[str, int]]) -> str:
            first, again, counts = r
            line = f"{counts['train_rows']} train / {counts['valid_rows']} valid rows, {first.meta['best_iteration'] + 1} trees"
            if again is not None:
                line += f"; refit on {again.meta['train_rows']} rows to {split.valid_end:%Y-%m-%d %H:%M}"
            return f"{line} ({spec.run.placement(count).value})"

        forecaster, again, _ = timer.run("fit", lambda: fit_model(spec, split, count), describe)
        return Fits({"xgboost": forecaster}, state=again)

    def refit(self, timer: StageTimer, data: TrainingData, fits: Fits) -> dict[str, ForecastModel]:
        return {} if fits.state is None else {"xgboost": fits.state}
