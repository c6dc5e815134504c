"""Train, calibrate, evaluate, register and (maybe) activate the model of one timeframe.

Stages, each timed and counted for the job's log: candles from the lake (up to the cut-off),
training rows with Ray Data, a time split with purge gaps, the XGBoost fit on Ray Train,
calibration on validation origins, evaluation on holdout origins against naive and against the
active model, registration, and activation only if the new model is no worse (champion /
challenger). Nothing here touches the active model until the very last step.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.build import feature_names
from features.profiles import profile_for
from market_data.source import utc
from storage.lake import Lake
from storage.registry import ArtifactError, ModelRegistry, TrainingInfo
from storage.schema import ModelRecord
from training.calibration import fit_calibration
from training.dataset import TARGETS, Split, rows_dataset, rows_local, time_split
from training.evaluation import accuracy_avg, evaluate, insample_naive_mae, select_origins
from training.forecaster import HORIZON, Forecaster
from training.xgb_train import fit_local, fit_with_ray, target_scale

log = logging.getLogger(__name__)

CALIBRATION_ORIGINS = 600  # tests pass fewer
HOLDOUT_ORIGINS = 600


@dataclass
class StageTimer:
    """Collects one line per stage (`name: counts in seconds`) and prints it as it goes."""

    prefix: str
    lines: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    echo: Callable[[str], None] = print

    def run(self, name: str, fn: Callable[[], Any], describe: Callable[[Any], str] = lambda _: "") -> Any:
        started = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - started
        self.seconds[name] = round(elapsed, 2)
        line = f"[{self.prefix}] {name:<10} {describe(result)} ({elapsed:.1f}s)"
        self.lines.append(line)
        self.echo(line)
        return result


@dataclass
class TrainOutcome:
    timeframe: str
    record: ModelRecord
    activated: bool
    reason: str
    report: dict
    seconds: dict[str, float]


def load_candles(data_dir: str | Path, tickers: Iterable[str], timeframe: str, end: pd.Timestamp | None) -> dict[str, pd.DataFrame]:
    lake = Lake(data_dir)
    out = {}
    for ticker in tickers:
        frame = lake.read(ticker, timeframe)
        if end is not None:
            frame = frame[frame["timestamp"] < end].reset_index(drop=True)
        if len(frame) > profile_for(timeframe).warmup + HORIZON:
            out[ticker] = frame
    return out


def split_for(candles: dict[str, pd.DataFrame], timeframe: str, fractions: tuple[float, float, float]) -> Split:
    warm = profile_for(timeframe).warmup
    first = min(frame["timestamp"].iloc[warm] for frame in candles.values())
    last = max(frame["timestamp"].iloc[-1] for frame in candles.values())
    return time_split(first, last, timeframe, fractions)


class _PartFilter:
    def __init__(self, split: Split, part: str) -> None:
        self.split, self.part = split, part

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return batch[self.split.part(batch["timestamp"]) == self.part]


def fit_model(data_dir: str | Path, tickers: list[str], timeframe: str, split: Split, end: pd.Timestamp | None,
              params: dict[str, Any], use_ray: bool, storage_path: str | None = None, max_failures: int = 0,
              shuffle_targets: bool = False, train_workers: int | None = None) -> tuple[Forecaster, dict[str, int]]:
    """Fit the booster on the train part (early stopping on valid) and wrap it in a forecaster."""
    features = feature_names(timeframe)
    if use_ray:
        rows = rows_dataset(data_dir, tickers, timeframe, end).materialize()
        train_ds = rows.map_batches(_PartFilter(split, "train"), batch_format="pandas")
        valid_ds = rows.map_batches(_PartFilter(split, "valid"), batch_format="pandas")
        if shuffle_targets:
            train_ds = _shuffled(train_ds)
        train_ds, valid_ds = train_ds.materialize(), valid_ds.materialize()
        counts = {"train_rows": train_ds.count(), "valid_rows": valid_ds.count()}
        if not counts["train_rows"] or not counts["valid_rows"]:
            raise ValueError(f"{timeframe}: the split left {counts}; more history is needed")
        scale = target_scale(train_ds.select_columns(TARGETS).to_pandas())
        fit = fit_with_ray(train_ds, valid_ds, features, params, scale, storage_path, num_workers=train_workers,
                           max_failures=max_failures)
    else:
        rows = rows_local(data_dir, tickers, timeframe, end)
        parts = split.part(rows["timestamp"])
        train, valid = rows[parts == "train"], rows[parts == "valid"]
        if shuffle_targets:
            train = train.assign(**{t: np.random.default_rng(0).permutation(train[t].to_numpy()) for t in TARGETS})
        counts = {"train_rows": len(train), "valid_rows": len(valid)}
        if not len(train) or not len(valid):
            raise ValueError(f"{timeframe}: the split left {counts}; more history is needed")
        fit = fit_local(train, valid, features, params)
    meta = {"params": fit.params, "best_iteration": fit.best_iteration, "split": split.as_dict(), **counts}
    return Forecaster(fit.booster, features, timeframe, fit.target_scale, meta=meta), counts


def _shuffled(dataset: Any) -> Any:
    """The train rows with their targets permuted (a model that can learn nothing real)."""
    frame = dataset.to_pandas()
    rng = np.random.default_rng(0)
    frame = frame.assign(**{t: rng.permutation(frame[t].to_numpy()) for t in TARGETS})
    import ray

    return ray.data.from_pandas(frame)


def calibrate(forecaster: Forecaster, candles: dict[str, pd.DataFrame], split: Split,
              max_origins: int = CALIBRATION_ORIGINS) -> int:
    origins = select_origins(candles, split.valid_start, split.valid_end, forecaster.window, stride=1,
                             max_origins=max_origins)
    raw = forecaster.predict_windows(origins.windows, HORIZON)
    forecaster.calibration = fit_calibration(raw.raw_return, origins.actual_close, raw.sigma)
    return len(origins)


def fit_and_calibrate(timer: StageTimer, data_dir: str | Path, tickers: list[str], timeframe: str, end: pd.Timestamp,
                      fractions: tuple[float, float, float], params: dict[str, Any], use_ray: bool,
                      storage_path: str | None = None, max_failures: int = 0, shuffle_targets: bool = False,
                      calibration_origins: int = CALIBRATION_ORIGINS,
                      train_workers: int | None = None) -> tuple[Forecaster, dict[str, pd.DataFrame], Split]:
    """Candles up to `end`, the split, the fit and the calibration: what training and backtests share."""
    candles = timer.run("candles", lambda: load_candles(data_dir, tickers, timeframe, end),
                        lambda c: f"{len(c)} symbols, {sum(len(f) for f in c.values())} candles")
    if not candles:
        raise ValueError(f"{timeframe}: no symbol in the lake has enough candles before {end}")
    split = timer.run("split", lambda: split_for(candles, timeframe, fractions),
                      lambda s: f"train < {s.train_end:%Y-%m-%d %H:%M}, valid {s.valid_start:%Y-%m-%d} to "
                                f"{s.valid_end:%Y-%m-%d}" + (f", holdout from {s.holdout_start:%Y-%m-%d}"
                                                             if fractions[2] > 0 else ""))
    forecaster, _ = timer.run(
        "fit", lambda: fit_model(data_dir, list(candles), timeframe, split, end, params, use_ray, storage_path,
                                 max_failures, shuffle_targets, train_workers),
        lambda r: f"{r[1]['train_rows']} train / {r[1]['valid_rows']} valid rows, "
                  f"{r[0].meta['best_iteration'] + 1} trees")
    timer.run("calibrate", lambda: calibrate(forecaster, candles, split, calibration_origins),
              lambda n: f"{n} validation origins")
    return forecaster, candles, split


def load_forecaster(registry: ModelRegistry, record: ModelRecord) -> Forecaster:
    return Forecaster.load(registry.open_artifact(record))


def train_timeframe(data_dir: str | Path, registry: ModelRegistry, tickers: list[str], timeframe: str,
                    as_of: datetime, params: dict[str, Any], use_ray: bool = True, storage_path: str | None = None,
                    shuffle_targets: bool = False, max_failures: int = 0, max_origins: int = HOLDOUT_ORIGINS,
                    train_workers: int | None = None, echo: Callable[[str], None] = print) -> TrainOutcome:
    end = utc(as_of)
    timer = StageTimer(timeframe, echo=echo)
    forecaster, candles, split = fit_and_calibrate(timer, data_dir, tickers, timeframe, end, (0.6, 0.2, 0.2), params,
                                                   use_ray, storage_path, max_failures, shuffle_targets, max_origins,
                                                   train_workers)
    scale = insample_naive_mae(candles, split.train_end)
    holdout = select_origins(candles, split.holdout_start, end, forecaster.window, max_origins=max_origins)
    report = timer.run("evaluate", lambda: evaluate(forecaster, holdout, scale),
                       lambda r: f"{r['n_origins']} holdout origins: MAE {r['model']['summary']['mae_mean']:.4f} "
                                 f"vs naive {r['naive']['summary']['mae_mean']:.4f}")
    activate, reason, champion_report = challenge(registry, timeframe, report, holdout, scale)
    report["champion"] = champion_report
    report["split"] = split.as_dict()
    report["seconds"] = timer.seconds
    info = TrainingInfo(training_start=split.train_start.to_pydatetime(), training_end=split.train_end.to_pydatetime(),
                        num_symbols=len(candles), top_symbols=list(candles), feature_count=len(forecaster.features),
                        accuracy_avg=accuracy_avg(report), trained_at=datetime.now(timezone.utc))

    def write(folder: Path) -> None:
        forecaster.save(folder)
        (folder / "metrics.json").write_text(json.dumps(report, indent=1, default=str))

    record = timer.run("register", lambda: registry.register(timeframe, write, info), lambda r: f"version {r.version}")
    if activate:
        timer.run("activate", lambda: registry.activate(record.id), lambda _: f"{record.version} active: {reason}")
    else:
        echo(f"[{timeframe}] activate   {record.version} not activated: {reason}")
    return TrainOutcome(timeframe, record, activate, reason, report, timer.seconds)


def challenge(registry: ModelRegistry, timeframe: str, report: dict, holdout: Any, scale: float) -> tuple[bool, str, dict | None]:
    """Champion / challenger: the new model must be no worse than the active one on the same
    holdout. Scores add the close MAE and the high/low MAE averaged over horizons, so a model that
    knows nothing of volatility loses. With no usable active model the new one is activated."""
    ours = report["model"]["summary"]["score"]
    champion = registry.active(timeframe)
    if champion is not None:
        try:
            theirs_report = evaluate(load_forecaster(registry, champion), holdout, scale)
        except (ArtifactError, ValueError, KeyError) as exc:
            log.warning("%s: active model %s cannot be evaluated (%s); comparing against naive", timeframe,
                        champion.version, exc)
        else:
            theirs = theirs_report["model"]["summary"]["score"]
            ok = ours <= theirs
            return ok, (f"score {ours:.5f} {'<=' if ok else '>'} active {champion.version} {theirs:.5f} on the same "
                        f"holdout"), {"version": champion.version, **theirs_report["model"]}
    naive = report["naive"]["summary"]["score"]
    # Serving needs a model; the first one goes live whatever it scores, and says how it compares
    # to naive (its forecasts are shrunk toward naive wherever it showed no edge on validation).
    return True, (f"first usable model of {timeframe}; score {ours:.5f} vs naive {naive:.5f} "
                  f"({'better' if ours < naive else 'not better'} than naive)"), None

