"""Train, calibrate, evaluate, register and (maybe) activate the model of one timeframe.

Stages, each timed and counted for the job's log: candles from the lake (up to the cut-off), a
time split with purge gaps, the model's fit on Ray (the recursive XGBoost, or the direct models
and their ensemble), calibration on validation origins, evaluation on holdout origins against
naive and against the active model, registration, and activation only if the new model is no
worse (champion / challenger), whatever kind the active model is. Nothing here touches the
active model until the very last step.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from clock import utc_now
from storage.registry import ArtifactError, ModelRegistry, TrainingInfo
from storage.schema import ModelRecord
from training.artifact import load_forecaster as load_artifact
from training.band.market import MarketReplay
from training.candidates import AUTO
from training.dataset import Split, validated_horizon
from training.evaluation import accuracy_avg, evaluate, insample_naive_mae, select_origins
from training.fitting import fit_candidates
from training.forecaster import ForecastModel
from training.selection import Choice, choose
from training.spec import FitSpec
from training.stages import HOLDOUT_ORIGINS, StageTimer

log = logging.getLogger(__name__)


@dataclass
class TrainOutcome:
    timeframe: str
    record: ModelRecord
    activated: bool
    reason: str
    report: dict
    seconds: dict[str, float]


def load_forecaster(registry: ModelRegistry, record: ModelRecord) -> ForecastModel:
    return load_artifact(registry.open_artifact(record))


def fit_forecaster(timer: StageTimer, spec: FitSpec, model: str) -> tuple[ForecastModel, dict[str, pd.DataFrame], Split]:
    """The calibrated forecaster named `model` (see `training.candidates.model_names`) as deployed (its
    refit where it has one and the timeframe deploys refits), its candles and its split."""
    fitted = fit_candidates(timer, spec, (model,))
    if model == AUTO:
        choice = choose_stage(timer, fitted.candidates, fitted.candles, fitted.split, spec.calibration_origins)
        return fitted.deployed(choice.name, choice.forecaster), fitted.candles, fitted.split
    return fitted.deployed(model), fitted.candles, fitted.split


def choose_stage(timer: StageTimer, candidates: dict[str, ForecastModel], candles: dict[str, pd.DataFrame],
                 split: Split, max_origins: int) -> Choice:
    """`auto`'s choice among fitted candidates, as a timed stage; the chosen forecaster's metadata
    keeps the validation figures it was chosen on."""
    choice = timer.run("choose", lambda: choose(candidates, candles, split, max_origins), lambda c: c.describe())
    v = choice.validation
    return replace(choice, forecaster=choice.forecaster.with_meta(
        validation_scores=v.scores, validation_intervals=v.intervals, validation_worst_horizon=v.worst_horizon,
        validation_edge_horizons=v.edge))


def train_timeframe(registry: ModelRegistry, spec: FitSpec, model: str = AUTO, max_origins: int = HOLDOUT_ORIGINS,
                    echo: Callable[[str], None] = print) -> TrainOutcome:
    """Fit `model` as `spec` says, evaluate it on the holdout, register it, and activate it if it
    is no worse than the active model."""
    timeframe, end = spec.timeframe, spec.end
    timer = StageTimer(timeframe, echo=echo)
    forecaster, candles, split = fit_forecaster(timer, spec, model)
    scale = insample_naive_mae(candles, split.train_end)
    holdout = select_origins(candles, split.holdout_start, end, forecaster.window, max_origins=max_origins,
                             horizon=validated_horizon(timeframe))
    market = MarketReplay(candles)
    report = timer.run("evaluate", lambda: evaluate(forecaster, holdout, scale, market),
                       lambda r: f"{r['n_origins']} holdout origins: MAE {r['model']['summary']['mae_mean']:.4f} "
                                 f"vs naive {r['naive']['summary']['mae_mean']:.4f}")
    activate, reason, champion_report = challenge(registry, timeframe, report, holdout, scale, market)
    if spec.shuffle_targets:
        # a control: where no model has an edge, forecasts are naive whatever the fit learned, so
        # its holdout score can tie or beat a real model's by chance; it is never served
        activate, reason = False, f"a control fitted on shuffled targets is never activated ({reason})"
    report["champion"] = champion_report
    report["model_kind"] = model
    report["split"] = split.as_dict()
    report["seconds"] = timer.seconds
    # a refit model has seen validation's candles too
    seen_until = split.valid_end if "refit" in forecaster.meta else split.train_end
    info = TrainingInfo(training_start=split.train_start.to_pydatetime(), training_end=seen_until.to_pydatetime(),
                        num_symbols=len(candles), top_symbols=list(candles), feature_count=len(forecaster.features),
                        accuracy_avg=accuracy_avg(report), trained_at=utc_now())

    def write(folder: Path) -> None:
        forecaster.save(folder)
        (folder / "metrics.json").write_text(json.dumps(report, indent=1, default=str))

    record = timer.run("register", lambda: registry.register(timeframe, write, info), lambda r: f"version {r.version}")
    if activate:
        timer.run("activate", lambda: registry.activate(record.id), lambda _: f"{record.version} active: {reason}")
    else:
        echo(f"[{timeframe}] activate   {record.version} not activated: {reason}")
    return TrainOutcome(timeframe, record, activate, reason, report, timer.seconds)


def challenge(registry: ModelRegistry, timeframe: str, report: dict, holdout: Any, scale: float,
              market: MarketReplay | None = None) -> tuple[bool, str, dict | None]:
    """Champion / challenger: the new model must be no worse than the active one on the same
    holdout. Scores add the close MAE and the high/low MAE averaged over horizons, so a model that
    knows nothing of volatility loses. With no usable active model the new one is activated."""
    ours = report["model"]["summary"]["score"]
    champion = registry.active(timeframe)
    if champion is not None:
        try:
            theirs_report = evaluate(load_forecaster(registry, champion), holdout, scale, market)
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

