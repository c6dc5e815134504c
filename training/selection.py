"""Which forecaster a timeframe deploys: the candidate that wins on validation, naive included.

Every candidate (the recursive XGBoost, each direct model, the ensembles) has been calibrated on
the validation period, so each states the forecast it would serve: shrunk toward naive where its
edge is not proven, naive outright where none is. They are scored on the same validation origins
by the mean absolute error of that stated close (log return from the origin) over the checked
horizons, relative to naive's. Naive is a candidate too, and the default: a model is chosen only
if validation proves its stated forecast better from h = 1 on in the earlier and in the later
half of the period alike, i.e. the upper end of the 95 % block-bootstrap interval of its error
ratio at h = 1 is below 1 in both (blocks of origin time, all symbols together), because what
validation shows is an upper bound on what the next regime keeps; and if at no horizon, in
neither half, validation proves it worse than naive (the lower end of that interval above 1: an
edge at a few horizons must not buy a loss at another). A model whose edge is proven only at
short horizons is kept there and states naive's moves beyond (`calibration.proven_edge`), so it
is no longer discarded whole for what it would have lost at h = 30. Among the proven, the lowest
mean ratio over the horizons wins.
When naive wins, the deployed forecaster is the best model with every horizon shrunk to naive:
it answers naive's closes, naive's bands and `flat` directions, and still has the volatility
forecast (candle highs and lows) of a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stats.bootstrap import ratio_interval
from training.calibration import edge_horizon, later_half
from training.dataset import Split, validated_horizon
from training.evaluation import Origins, select_origins, time_blocks
from training.forecaster import ForecastModel

NAIVE = "naive"


@dataclass
class Validation:
    """Every candidate's stated forecast against naive's on the same validation origins."""
    # candidate -> mean validation MAE of its stated close, relative to naive's (naive = 1.0)
    scores: dict[str, float] = field(default_factory=lambda: {NAIVE: 1.0})
    # candidate -> the 95 % block-bootstrap interval of that ratio, in the worse half of validation
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    # candidate -> its largest per-horizon MAE ratio to naive in either half of validation
    worst_horizon: dict[str, float] = field(default_factory=dict)
    # candidate -> how many leading horizons its stated forecast beats naive in both halves (the
    # upper end of the 95 % interval of the ratio below 1 in each)
    edge: dict[str, int] = field(default_factory=dict)
    # candidate -> the largest lower end of a per-horizon ratio's 95 % interval in either half: above
    # 1, validation proves it worse than naive there
    worst_lower: dict[str, float] = field(default_factory=dict)
    n_origins: int = 0

    def proven(self, name: str) -> bool:
        """Validation proves the candidate better than naive from h = 1 on in both halves, and
        worse at no horizon in either."""
        return self.edge[name] > 0 and self.worst_lower[name] <= 1.0


@dataclass
class Choice:
    name: str  # the winning candidate, or "naive"
    forecaster: ForecastModel
    validation: Validation

    def describe(self) -> str:
        v = self.validation
        ranked = ", ".join(f"{name} {score:.4f}" + (f" [{v.intervals[name][0]:.4f}, {v.intervals[name][1]:.4f}]"
                                                   f" worst horizon {v.worst_horizon[name]:.4f}"
                                                   f" edge to h {v.edge[name]}"
                                                   if name in v.intervals else "")
                           for name, score in sorted(v.scores.items(), key=lambda kv: kv[1]))
        return f"{self.name} chosen on {v.n_origins} validation origins (MAE vs naive: {ranked})"


def as_naive(forecaster: ForecastModel) -> ForecastModel:
    """The forecaster with no horizon kept: naive closes and bands, flat directions."""
    return forecaster.with_calibration(forecaster.calibration.as_naive()).with_meta(candidate=NAIVE)


def validation_scores(candidates: dict[str, ForecastModel], origins: Origins, timeframe: str) -> Validation:
    """Each candidate's mean absolute error of its stated close over the horizons, over naive's;
    the 95 % block-bootstrap interval of that ratio in the worse of the period's two halves (an
    edge must hold in the earlier and in the later half of validation to count as proven); and its
    largest ratio at any one horizon in either half."""
    horizon = origins.actual_close.shape[1]
    naive_h = np.abs(origins.actual_close)
    naive = naive_h.mean(axis=1)
    blocks = time_blocks(origins, timeframe)
    later = later_half(origins.windows.stamps[:, -1])
    parts = [part for part in (~later, later) if part.any()]
    table = Validation(n_origins=len(origins))
    for name, forecaster in candidates.items():
        err_h = np.abs(forecaster.predict_windows(origins.windows, horizon).cum_return - origins.actual_close)
        err = err_h.mean(axis=1)
        table.scores[name] = ratio_interval(err, naive, blocks)[0]
        halves = [ratio_interval(err[part], naive[part], blocks[part]) for part in parts]
        table.intervals[name] = max(((low, high) for _, low, high in halves), key=lambda interval: interval[1])
        by_half = [[ratio_interval(err_h[part, h], naive_h[part, h], blocks[part]) for h in range(horizon)]
                   for part in parts]
        table.worst_horizon[name] = max(ratio for half in by_half for ratio, _, _ in half)
        table.worst_lower[name] = max(low for half in by_half for _, low, _ in half)
        beats = np.asarray(np.array([[high < 1.0 for _, _, high in half] for half in by_half]).all(axis=0))
        table.edge[name] = edge_horizon(beats)
    return table


def choose(candidates: dict[str, ForecastModel], candles: dict[str, pd.DataFrame], split: Split,
           max_origins: int) -> Choice:
    """The candidate with the lowest validation error among those proven better than naive; else naive."""
    if not candidates:
        raise ValueError("no candidate forecasters to choose from")
    timeframe = next(iter(candidates.values())).timeframe
    window = max(f.window for f in candidates.values())
    origins = select_origins(candles, split.valid_start, split.valid_end, window, max_origins=max_origins,
                             horizon=validated_horizon(timeframe))
    return choose_on(candidates, origins, timeframe)


def choose_on(candidates: dict[str, ForecastModel], origins: Origins, timeframe: str) -> Choice:
    """`choose` on given validation origins."""
    table = validation_scores(candidates, origins, timeframe)
    proven = [name for name in candidates if table.proven(name)]
    if proven:
        winner = min(proven, key=lambda name: table.scores[name])
        return Choice(winner, candidates[winner].with_meta(candidate=winner), table)
    best = min(candidates, key=lambda name: table.scores[name])
    return Choice(NAIVE, as_naive(candidates[best]), table)
