"""Which forecaster a timeframe deploys: the candidate that wins on validation, naive included.

Every candidate (the recursive XGBoost, each direct model, the ensembles) has been calibrated on
the validation period, so each states the forecast it would serve: shrunk toward naive where its
edge is not proven, naive outright where none is. They are scored on the same validation origins
by the mean absolute error of that stated close (log return from the origin) over the checked
horizons. Naive is a candidate too; it wins ties, and a model must beat it by `MARGIN` (a share
of naive's error) to be chosen, because what validation shows is an upper bound on what the next
regime keeps. When naive wins, the deployed forecaster is the best model with every horizon
shrunk to naive: it answers naive's closes, naive's bands and `flat` directions, and still has
the volatility forecast (candle highs and lows) of a model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from training.dataset import Split, validated_horizon
from training.evaluation import Origins, select_origins
from training.forecaster import ForecastModel

MARGIN = 0.005  # a model must be at least 0.5 % better than naive on validation
NAIVE = "naive"


@dataclass
class Choice:
    name: str  # the winning candidate, or "naive"
    forecaster: ForecastModel
    # candidate -> mean validation MAE of its stated close, relative to naive's (naive = 1.0)
    scores: dict[str, float] = field(default_factory=dict)
    n_origins: int = 0

    def describe(self) -> str:
        ranked = ", ".join(f"{name} {score:.4f}" for name, score in sorted(self.scores.items(), key=lambda kv: kv[1]))
        return f"{self.name} chosen on {self.n_origins} validation origins (MAE vs naive: {ranked})"


def as_naive(forecaster: ForecastModel) -> ForecastModel:
    """The forecaster with no horizon kept: naive closes and bands, flat directions."""
    out = copy.copy(forecaster)
    cal = forecaster.calibration
    out.calibration = replace(cal, shrink=[0.0] * len(cal.shrink), band_lo=list(cal.naive_lo),
                              band_hi=list(cal.naive_hi))
    out.meta = {**forecaster.meta, "candidate": NAIVE}
    return out


def validation_scores(candidates: dict[str, ForecastModel], origins: Origins) -> dict[str, float]:
    """Each candidate's mean absolute error of its stated close over the horizons, over naive's."""
    horizon = origins.actual_close.shape[1]
    naive = float(np.mean(np.abs(origins.actual_close)))
    scores = {NAIVE: 1.0}
    for name, forecaster in candidates.items():
        stated = forecaster.predict_windows(origins.windows, horizon).cum_return
        scores[name] = float(np.mean(np.abs(stated - origins.actual_close))) / naive if naive > 0 else 1.0
    return scores


def choose(candidates: dict[str, ForecastModel], candles: dict[str, pd.DataFrame], split: Split,
           max_origins: int) -> Choice:
    """The candidate with the lowest validation error, if it beats naive by `MARGIN`; else naive."""
    if not candidates:
        raise ValueError("no candidate forecasters to choose from")
    timeframe = next(iter(candidates.values())).timeframe
    window = max(f.window for f in candidates.values())
    origins = select_origins(candles, split.valid_start, split.valid_end, window, max_origins=max_origins,
                             horizon=validated_horizon(timeframe))
    scores = validation_scores(candidates, origins)
    best = min(candidates, key=lambda name: scores[name])
    if scores[best] <= 1.0 - MARGIN:
        chosen = copy.copy(candidates[best])
        chosen.meta = {**chosen.meta, "candidate": best}
        return Choice(best, chosen, scores, len(origins))
    return Choice(NAIVE, as_naive(candidates[best]), scores, len(origins))
