"""Walk-forward backtest: fit on candles up to `train_end`, forecast every origin of the test
period, and report each model beside naive in the JSON shape README.md documents. Each model is
reported twice: as first fitted on the train part (e.g. `xgboost`) and refitted on train +
validation with its calibration kept (`xgboost_refit`), which the weekly job deploys where the
timeframe deploys refits (`Timeframe.deploy_refit`: 1d, 1w, 1m).

Several models can be compared in one run (an A/B): they are fitted on the same candles with the
same split, calibrated on the same validation origins, and scored on the same test origins; the
direct models share one fit of their members.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import pandas as pd

from market_data.source import utc
from training.band.every_candle import band_every_candle
from training.band.market import MarketReplay
from training.candidates import AUTO, model_names
from training.dataset import validated_horizon
from training.evaluation import evaluate, insample_naive_mae, sample_stride, select_origins
from training.fitting import fit_candidates
from training.forecaster import HORIZON
from training.pipeline import choose_stage
from training.spec import FitSpec
from training.stages import StageTimer, load_candles


def refit_name(name: str) -> str:
    """How the backtest reports a candidate's refit (fitted again on train + validation)."""
    return f"{name}_refit"


FRACTIONS = (0.75, 0.25, 0.0)  # train | valid before train_end; the test period is the holdout


def training_history(candles: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """What the fit learned from: its first and last candle's open time and how many candles."""
    firsts = [frame["timestamp"].iloc[0] for frame in candles.values() if len(frame)]
    lasts = [frame["timestamp"].iloc[-1] for frame in candles.values() if len(frame)]
    return {"start": min(firsts).isoformat() if firsts else None, "end": max(lasts).isoformat() if lasts else None,
            "candles": int(sum(len(frame) for frame in candles.values()))}


def parse_models(value: str) -> list[str]:
    """`auto`, `xgboost`, a comma-separated list of `model_names()`, or `all` (every candidate and `auto`)."""
    known = model_names()
    names = list(known) if value.strip() == "all" else [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"unknown model(s) {unknown or value!r}; known: {', '.join(known)} or all")
    return names


def run_backtest(spec: FitSpec, test_end: datetime, models: list[str] | str, stride: int | None = None,
                 echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Fit `models` on candles before `spec.end` (the train end; validation is its last quarter)
    and score them on the test period [spec.end, test_end) on at most `spec.calibration_origins`
    origins, `stride` candles apart (default: spread over the period)."""
    names = parse_models(models) if isinstance(models, str) else list(models)
    parse_models(",".join(names))
    spec = replace(spec, end=utc(spec.end), fractions=FRACTIONS)
    data_dir, timeframe, max_origins = spec.data_dir, spec.timeframe, spec.calibration_origins
    train_end_ts, test_end_ts = spec.end, utc(test_end)
    timer = StageTimer(f"backtest {timeframe}", echo=echo)
    auto = AUTO in names
    fitted = fit_candidates(timer, spec, tuple(names))
    if auto:  # every candidate, reported beside the one chosen
        names = [n for n in names if n != AUTO and n not in fitted.candidates] + [*fitted.candidates, AUTO]
    train_candles, split = fitted.candles, fitted.split
    forecasters: dict[str, Any] = dict(fitted.candidates)
    names = [n for n in names if n in forecasters or n == AUTO]  # direct models cannot fit 1m
    if auto:
        choice = choose_stage(timer, dict(fitted.candidates), train_candles, split, max_origins)
        forecasters[AUTO] = fitted.deployed(choice.name, choice.forecaster)
    for name, again in fitted.refits.items():  # the A/B of refitting: the refit beside its first fit
        if name in names:
            forecasters[refit_name(name)] = again
            names.insert(names.index(name) + 1, refit_name(name))
    candles = load_candles(data_dir, list(train_candles), timeframe, test_end_ts)
    window = max(f.window for f in forecasters.values())
    if stride is None:
        stride = sample_stride(candles, train_end_ts, test_end_ts, max_origins)
    horizon = validated_horizon(timeframe)
    origins = select_origins(candles, train_end_ts, test_end_ts, window, stride=stride, max_origins=max_origins,
                             horizon=horizon)
    scale = insample_naive_mae(train_candles, train_end_ts)
    results: dict[str, dict[str, Any]] = {}
    market = MarketReplay(candles)  # candidates of one fit share their band's replay
    for name in names:
        def run(f: Any = forecasters[name]) -> dict[str, Any]:
            return evaluate(f, origins, scale, market)

        results[name] = timer.run(f"evaluate {name}", run,
                                  lambda r: f"{r['n_origins']} origins every {stride} candles: MAE "
                                            f"{r['model']['summary']['mae_mean']:.5f} vs naive "
                                            f"{r['naive']['summary']['mae_mean']:.5f}")
    naive = results[names[0]]["naive"]
    deployed = forecasters[AUTO if auto else names[0]]
    every = timer.run("band on every candle", lambda: band_every_candle(
        deployed.calibration.band, candles, (train_end_ts, test_end_ts), (split.valid_start, split.valid_end),
        timeframe, market).summary(), lambda r: f"{r['1']['origins']} origins: interval score / the 20-candle band's "
                                      f"{r['1']['ratio']:.3f} at h = 1, {r['30']['ratio']:.3f} at h = 30")
    return {
        "timeframe": timeframe,
        "train_end": train_end_ts.isoformat(),
        "test_end": test_end_ts.isoformat(),
        "training_history": training_history(train_candles),
        "n_symbols": len(set(origins.symbols)),
        "n_forecasts": len(origins),
        "models": {**{n: {"horizons": results[n]["model"]["horizons"]} for n in names},
                   "naive": {"horizons": naive["horizons"]}},
        "summary": {**{n: results[n]["model"]["summary"] for n in names}, "naive": naive["summary"]},
        "reliability": {n: results[n]["model"]["reliability"] for n in names},
        "band_every_candle": every,
        "weights": {n: f.weights for n, f in forecasters.items() if hasattr(f, "weights")},
        **({"choice": {"chosen": choice.name, "validation_mae_vs_naive": choice.validation.scores,
                       "validation_intervals": choice.validation.intervals,
                       "validation_worst_horizon": choice.validation.worst_horizon,
                       "validation_edge_horizons": choice.validation.edge}} if auto else {}),
        "origins": {"stride_candles": stride, "max_origins": max_origins, "horizon": horizon,
                    "note": "origins are test-period candles with a full feature window before them and "
                            f"{horizon} known candles after them, every {stride} candles"
                            + ("" if horizon == HORIZON else f" (the {timeframe} history checks {horizon} steps; "
                                                              "later ones are naive with extrapolated bands)")},
        "calibration": {"split": split.as_dict(), "origins": {n: f.calibration.n_origins
                                                               for n, f in forecasters.items()}},
        "seconds": timer.seconds,
    }
