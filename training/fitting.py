"""The one loop every fit of a timeframe goes through: the weekly job, the backtest and
bench.honesty alike (tuning shares its data and split).

Candles up to the spec's cut-off and their purged split, then for each family of the registry
that is wanted: fit on the train part; calibrate every candidate alike on the same validation
origins (shrinkage toward naive, bands, confidence: residuals of data the fit had not seen); and
refit on train + validation, keeping that calibration (the only honest one). A control fitted on
shuffled targets is never refitted: it is never deployed.
"""

from __future__ import annotations

import numpy as np

from features.profiles import profile_for
from market_data.timeframes import HORIZON
from training.band.band import BandBasis
from training.band.choice import choose_band_scale
from training.band.market import market_rate
from training.calibration import fit_calibration
from training.candidates import AUTO, ESTIMATORS, model_names
from training.dataset import validated_horizon
from training.estimator import Estimator, TrainingData
from training.evaluation import Origins
from training.forecaster import ForecastModel
from training.spec import FitSpec
from training.stages import Fitted, StageTimer, candles_and_split


def training_data(timer: StageTimer, spec: FitSpec) -> TrainingData:
    """The candles up to `spec.end` (the symbols with enough of them) and their split."""
    candles, split = candles_and_split(timer, spec)
    return TrainingData(spec.with_tickers(list(candles)), candles, split)


def wanted(estimator: Estimator, names: tuple[str, ...], timeframe: str) -> tuple[str, ...]:
    """The candidates of `estimator` that `names` ask for: all of them for `auto` where the
    family can fit the timeframe; a name given outright even where it cannot (its fit says why)."""
    auto = AUTO in names and estimator.usable(timeframe)
    return tuple(n for n in estimator.names if auto or n in names)


def fit_candidates(timer: StageTimer, spec: FitSpec, names: tuple[str, ...] = (AUTO,)) -> Fitted:
    """The candidates `names` (see `training.candidates.model_names`; `auto`: every usable one),
    fitted, calibrated on the same validation origins, and refitted where the spec says so."""
    known = model_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; known: {list(known)}")
    data = training_data(timer, spec)
    fitted = Fitted({}, data.candles, data.split)
    for estimator in ESTIMATORS:
        asked = wanted(estimator, names, spec.timeframe)
        if not asked:
            continue
        fits = estimator.fit(timer, data, asked)
        calibrated = calibrate_stage(timer, fits.models, data)
        fitted.candidates.update(calibrated)
        if spec.refit and not spec.shuffle_targets:
            for name, again in estimator.refit(timer, data, fits).items():
                fitted.refits[name] = again.with_calibration(calibrated[name].calibration)
    return fitted


def calibrate_stage(timer: StageTimer, models: dict[str, ForecastModel], data: TrainingData) -> dict[str, ForecastModel]:
    count = len(models)
    calibrated, _ = timer.run("calibrate", lambda: calibrate(models, data),
                              lambda out: f"{count} candidate(s) on {out[1]} validation origins")
    return calibrated


def calibrate(models: dict[str, ForecastModel], data: TrainingData) -> tuple[dict[str, ForecastModel], int]:
    """Each model with its calibration, fitted on its forecasts of the shared validation origins,
    its band in the units of the volatility model validation chose (`training.band.choice`); and
    how many origins those were."""
    origins: Origins = data.validation_origins()
    timeframe, split = data.spec.timeframe, data.split
    horizon = validated_horizon(timeframe)
    choice = choose_band_scale(data.candles, split, horizon, profile_for(timeframe).volatility_window)
    basis = BandBasis(choice.scale, choice.scale.at(np.log(origins.windows.close), horizon), choice.halves)
    out = {}
    for name, model in models.items():
        raw = model.predict_windows(origins.windows, horizon)
        cal = fit_calibration(raw.raw_return, origins.actual_close, raw.sigma, origins.windows.stamps[:, -1],
                              basis).extended(HORIZON)
        # the market-wide adaptation replays from validation's end, where this band is the fitted one
        band = cal.band.adapting(market_rate(timeframe), split.valid_end.isoformat())
        out[name] = model.with_calibration(cal.with_band(band))
    return out, len(origins)
