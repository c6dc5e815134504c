"""The one interface every model family implements, and the data they all fit on.

As scikit-learn's estimators share one interface (parameters in, fitted state out), every family
of candidates (the recursive XGBoost; the direct models and their ensembles) offers the same
two calls: `fit` on the train part of a split, with early stopping on validation where the model
has it, giving one `ForecastModel` per candidate; and `refit`, the same candidates fitted again
on train + validation with the capacity validation chose. Predicting goes through
`ForecastModel`. Calibration is not the family's business: `training.fitting` calibrates every
candidate alike on the same validation origins, between the two calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from features.profiles import profile_for
from training.dataset import Split, validated_horizon
from training.evaluation import Origins, select_origins
from training.forecaster import ForecastModel
from training.spec import FitSpec
from training.stages import StageTimer


@dataclass
class TrainingData:
    """The candles every candidate of one fit sees (up to the spec's cut-off), their purged time
    split, and the validation origins every candidate is calibrated on (selected once, so that
    models' forecasts of them are computed once and shared)."""

    spec: FitSpec
    candles: dict[str, pd.DataFrame]
    split: Split
    _origins: Origins | None = field(default=None, repr=False)

    def validation_origins(self) -> Origins:
        if self._origins is None:
            timeframe = self.spec.timeframe
            self._origins = select_origins(self.candles, self.split.valid_start, self.split.valid_end,
                                           profile_for(timeframe).serving_window, stride=1,
                                           max_origins=self.spec.calibration_origins,
                                           horizon=validated_horizon(timeframe))
        return self._origins


@dataclass
class Fits:
    """What a family's `fit` gives: one uncalibrated forecaster per candidate, and whatever the
    family keeps for its `refit` (its own business: rows already built, a refit made alongside)."""

    models: dict[str, ForecastModel]
    state: Any = None


class Estimator(Protocol):
    """A family of candidates fitted together (they may share work: rows, members)."""

    @property
    def names(self) -> tuple[str, ...]:
        """The candidates it can give, as `--model` names them."""
        ...

    def usable(self, timeframe: str) -> bool:
        """Whether the family can fit `timeframe` at all (its history may be too short)."""
        ...

    def fit(self, timer: StageTimer, data: TrainingData, names: tuple[str, ...]) -> Fits:
        """The candidates `names` (a subset of `self.names`), fitted on the train part."""
        ...

    def refit(self, timer: StageTimer, data: TrainingData, fits: Fits) -> dict[str, ForecastModel]:
        """Each fitted candidate fitted again on everything before the end of validation, with
        the capacity validation chose and no early stopping (validation is training data now)."""
        ...
