"""Fit the direct models of one timeframe and calibrate each combination of them on validation.

Stages (each timed for the job's log): direct rows with Ray Data, then XGBoost on Ray Train's
`XGBoostTrainer`, the random forest in a Ray task and the LSTM on Ray Train's `TorchTrainer`,
each on the train rows with early stopping (where the model has it) on the validation rows.
Then every variant (each model alone, the 40/40/20 ensemble, the ensemble with weights fitted
on validation) is calibrated on the same validation origins: the members' forecasts are
computed once and shared.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from config import HORIZON
from training.calibration import fit_calibration, horizon_scale, naive_move_halves
from training.dataset import NotEnoughHistory, Split, validated_horizon
from training.direct_data import DirectRows, direct_rows, thinning_stride
from training.direct_lstm import LSTM_PARAMS
from training.direct_rf import RF_PARAMS
from training.direct_xgb import DIRECT_XGB_PARAMS
from training.ensemble import FIXED_WEIGHTS, MEMBER_TYPES, DirectForecaster, Member, fit_weights
from training.evaluation import select_origins
from training.spec import CALIBRATION_ORIGINS, FitSpec
from training.stages import Fitted, StageTimer, candles_and_split

DIRECT_MODELS = ("xgb_direct", "rf", "lstm")
ENSEMBLES = ("ensemble", "ensemble_fitted")
VARIANTS = (*DIRECT_MODELS, *ENSEMBLES)


def default_direct_params() -> dict[str, dict[str, Any]]:
    return {"xgb_direct": dict(DIRECT_XGB_PARAMS), "rf": dict(RF_PARAMS), "lstm": dict(LSTM_PARAMS)}


def members_needed(variants: tuple[str, ...]) -> tuple[str, ...]:
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown direct models {sorted(unknown)}; known: {list(VARIANTS)}")
    if set(variants) & set(ENSEMBLES):
        return DIRECT_MODELS
    return tuple(m for m in DIRECT_MODELS if m in variants)


def fit_members(timer: StageTimer, train: DirectRows, valid: DirectRows, spec: FitSpec,
                names: tuple[str, ...]) -> dict[str, Member]:
    """Each named direct model, fitted the same way: its inputs, its parameters, the spec's run options."""
    params = {**default_direct_params(), **(spec.direct_params or {})}
    members: dict[str, Member] = {}
    for name in names:
        kind = MEMBER_TYPES[name]

        def fit(kind: type[Member] = kind, name: str = name) -> Member:
            return kind.fit(train, valid, kind.input_features(spec.timeframe), params[name], spec.run)

        members[name] = timer.run(f"fit {name}", fit, lambda m: m.summary())
    return members


def calibrate_variants(members: dict[str, Member], timeframe: str, candles: dict[str, pd.DataFrame], split: Split,
                       variants: tuple[str, ...], max_origins: int = CALIBRATION_ORIGINS,
                       meta: dict[str, Any] | None = None) -> dict[str, DirectForecaster]:
    """Weights (where fitted) and calibration of every variant, on validation origins only."""
    probe = DirectForecaster(members, {n: 1.0 for n in members}, timeframe)
    origins = select_origins(candles, split.valid_start, split.valid_end, probe.window, max_origins=max_origins)
    sigma = probe.sigma(origins.windows)
    member_z = probe.member_z(origins.windows)
    actual_z = origins.actual_close / horizon_scale(sigma, HORIZON)
    naive_halves = naive_move_halves(candles, split.valid_start, split.valid_end, timeframe, HORIZON)
    out = {}
    for variant in variants:
        if variant == "ensemble":
            weights, source = dict(FIXED_WEIGHTS), "fixed 40/40/20 (as specified)"
        elif variant == "ensemble_fitted":
            weights, source = fit_weights(member_z, actual_z), f"fitted on {len(origins)} validation origins"
        else:
            weights, source = {variant: 1.0}, "single model"
        forecaster = DirectForecaster(members, weights, timeframe,
                                      meta={**(meta or {}), "variant": variant, "weights_source": source,
                                            "members": {n: getattr(members[n], "info", {}) for n in weights}})
        raw = forecaster.raw_return(origins.windows)
        forecaster.calibration = fit_calibration(raw, origins.actual_close, sigma, naive_halves,
                                                 origins.windows.stamps[:, -1])
        out[variant] = forecaster
    return out


def refit_variants(timer: StageTimer, forecasters: dict[str, DirectForecaster], rows: DirectRows,
                   split: Split, spec: FitSpec) -> dict[str, DirectForecaster]:
    """Every variant as deployed: its members fitted again on `rows` (everything before the end
    of validation, `Member.refit`), each member once, with the weights and calibration the first
    fits earned on validation (the only honest ones: residuals of data those fits had not seen)."""
    first = next(iter(forecasters.values())).members  # every variant holds the same fitted members
    needed = sorted({name for f in forecasters.values() for name in f.weights})
    again: dict[str, Member] = {}
    for name in needed:
        def refit(member: Member = first[name]) -> Member:
            return member.refit(rows, spec.run)

        again[name] = timer.run(f"refit {name}", refit, lambda _: f"on {len(rows)} origins to {split.valid_end:%Y-%m-%d}")
    stamp = {"train_end": split.valid_end.isoformat(), "first_fit_train_end": split.train_end.isoformat()}
    return {variant: DirectForecaster(again, f.weights, f.timeframe, f.calibration,
                                      {**f.meta, "train_rows": len(rows), "refit": stamp,
                                       "members": {n: again[n].info for n in f.weights}})
            for variant, f in forecasters.items()}


def fit_direct(timer: StageTimer, spec: FitSpec, variants: tuple[str, ...] = VARIANTS,
               loaded: tuple[dict[str, pd.DataFrame], Split] | None = None) -> Fitted:
    """Candles, split, direct rows, the members' fits, every variant's calibration and, with
    `spec.refit`, every variant's refit (`refit_variants`; never for a shuffled-targets control,
    which is never deployed). `loaded`: the candles and split another model of the same spec
    already read (the lake is read once)."""
    timeframe = spec.timeframe
    names = members_needed(variants)
    if validated_horizon(timeframe) < HORIZON:
        raise NotEnoughHistory(f"{timeframe}: direct models learn from origins with all {HORIZON} later candles "
                               f"known, and its retained history holds too few; use --model xgboost")
    candles, split = loaded if loaded is not None else candles_and_split(timer, spec)
    stride = thinning_stride(len(f) for f in candles.values())
    rows = timer.run("rows", lambda: direct_rows(spec.data_dir, list(candles), timeframe, spec.end, stride,
                                                 spec.use_ray),
                     lambda r: f"{len(r)} origins (every {stride} candles), {r.x.shape[1]} features, "
                               f"{r.seq.shape[1]}x{r.seq.shape[2]} sequences")
    parts = rows.split(split)
    train, valid = parts["train"], parts["valid"]
    if not len(train) or not len(valid):
        raise ValueError(f"{timeframe}: the split left {len(train)} train and {len(valid)} valid direct rows")
    if spec.shuffle_targets:
        train.y = train.y[np.random.default_rng(0).permutation(len(train))]
    members = fit_members(timer, train, valid, spec, names)
    meta = {"split": split.as_dict(), "train_rows": len(train), "valid_rows": len(valid), "stride": stride}
    forecasters = timer.run("calibrate", lambda: calibrate_variants(members, timeframe, candles, split, variants,
                                                                   spec.calibration_origins, meta),
                            lambda f: f"{len(f)} variants on validation origins")
    refits = {} if not spec.refit or spec.shuffle_targets else refit_variants(timer, forecasters, parts["refit"],
                                                                              split, spec)
    return Fitted(dict(forecasters), candles, split, dict(refits))
