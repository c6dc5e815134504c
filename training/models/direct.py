"""The direct models of one timeframe as an `Estimator`: each member model (XGBoost, random forest,
LSTM; the registry's `MEMBERS`) fitted once on the direct rows, and every variant built on them:
each member alone, the 40/40/20 ensemble, and the ensemble with weights fitted on validation.

Stages (each timed for the job's log): direct rows with Ray Data, then each member on the train
rows with early stopping (where the model has it) on the validation rows: XGBoost on Ray Train's
`XGBoostTrainer`, the random forest in a Ray task, the LSTM on Ray Train's `TorchTrainer`. The
members' forecasts of the validation origins are computed once and shared by every variant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from market_data.timeframes import HORIZON
from training.calibration import horizon_scale
from training.dataset import NotEnoughHistory, Split, validated_horizon
from training.estimator import Fits, TrainingData
from training.evaluation import Origins
from training.forecaster import ForecastModel
from training.models.direct_rows import DirectRows, direct_rows, thinning_stride
from training.models.ensemble import FIXED_WEIGHTS, DirectForecaster, fit_weights
from training.models.member import Member
from training.spec import FitSpec
from training.stages import StageTimer

ENSEMBLES = ("ensemble", "ensemble_fitted")


@dataclass
class _Rows:
    """What `fit` keeps for `refit`: the rows of everything before the end of validation."""

    refit: DirectRows


class DirectModels:
    def __init__(self, members: Mapping[str, type[Member]]) -> None:
        self.members = members  # the registry itself: a member added to it is a candidate

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.members, *ENSEMBLES)

    def default_params(self) -> dict[str, dict[str, Any]]:
        return {name: dict(kind.default_params) for name, kind in self.members.items()}

    def usable(self, timeframe: str) -> bool:
        """Direct models learn from origins with all 30 later candles known."""
        return validated_horizon(timeframe) == HORIZON

    def members_needed(self, variants: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(variants) - set(self.names)
        if unknown:
            raise ValueError(f"unknown direct models {sorted(unknown)}; known: {list(self.names)}")
        if set(variants) & set(ENSEMBLES):
            return tuple(self.members)
        return tuple(m for m in self.members if m in variants)

    def fit(self, timer: StageTimer, data: TrainingData, names: tuple[str, ...]) -> Fits:
        spec, timeframe = data.spec, data.spec.timeframe
        needed = self.members_needed(names)
        if not self.usable(timeframe):
            raise NotEnoughHistory(f"{timeframe}: direct models learn from origins with all {HORIZON} later candles "
                                   f"known, and its retained history holds too few; use --model xgboost")
        stride = thinning_stride(len(f) for f in data.candles.values())
        rows = timer.run("rows", lambda: direct_rows(spec.data_dir, list(data.candles), timeframe, spec.end, stride,
                                                     spec.run),
                         lambda r: f"{len(r)} origins (every {stride} candles), {r.x.shape[1]} features, "
                                   f"{r.seq.shape[1]}x{r.seq.shape[2]} sequences")
        parts = rows.split(data.split)
        train, valid = parts["train"], parts["valid"]
        if not len(train) or not len(valid):
            raise ValueError(f"{timeframe}: the split left {len(train)} train and {len(valid)} valid direct rows")
        if spec.shuffle_targets:
            train.y = train.y[np.random.default_rng(0).permutation(len(train))]
        members = self.fit_members(timer, train, valid, spec, needed)
        meta = {"split": data.split.as_dict(), "train_rows": len(train), "valid_rows": len(valid), "stride": stride}
        variants = timer.run("weights", lambda: variants_of(members, timeframe, data.validation_origins(), names, meta),
                             lambda v: f"{len(v)} variants of {len(members)} members")
        return Fits(dict(variants), _Rows(parts["refit"]))

    def fit_members(self, timer: StageTimer, train: DirectRows, valid: DirectRows, spec: FitSpec,
                    names: tuple[str, ...]) -> dict[str, Member]:
        """Each named member, fitted the same way: its inputs, its parameters, the spec's run options."""
        params = {**self.default_params(), **(spec.direct_params or {})}
        members: dict[str, Member] = {}
        for name in names:
            kind = self.members[name]

            def fit(kind: type[Member] = kind, name: str = name) -> Member:
                return kind.fit(train, valid, kind.input_features(spec.timeframe), params[name], spec.run)

            members[name] = timer.run(f"fit {name}", fit, lambda m: m.summary())
        return members

    def refit(self, timer: StageTimer, data: TrainingData, fits: Fits) -> dict[str, ForecastModel]:
        """Every variant as deployed: its members fitted again on the refit rows (`Member.refit`),
        each member once, with the weights the first fits earned on validation."""
        forecasters = {name: model for name, model in fits.models.items() if isinstance(model, DirectForecaster)}
        return dict(refit_variants(timer, forecasters, fits.state.refit, data.split, data.spec))


def variants_of(members: dict[str, Member], timeframe: str, origins: Origins, variants: tuple[str, ...],
                meta: dict[str, Any] | None = None) -> dict[str, DirectForecaster]:
    """Every variant's forecaster over the same fitted members; the fitted ensemble's weights
    from validation origins only."""
    out = {}
    for variant in variants:
        if variant == "ensemble":
            weights, source = dict(FIXED_WEIGHTS), "fixed 40/40/20 (as specified)"
        elif variant == "ensemble_fitted":
            probe = DirectForecaster(members, {n: 1.0 for n in members}, timeframe)
            actual_z = origins.actual_close / horizon_scale(probe.sigma(origins.windows), HORIZON)
            weights, source = fit_weights(probe.member_z(origins.windows), actual_z), \
                f"fitted on {len(origins)} validation origins"
        else:
            weights, source = {variant: 1.0}, "single model"
        out[variant] = DirectForecaster(members, weights, timeframe,
                                        meta={**(meta or {}), "variant": variant, "weights_source": source,
                                              "members": {n: getattr(members[n], "info", {}) for n in weights}})
    return out


def refit_variants(timer: StageTimer, forecasters: dict[str, DirectForecaster], rows: DirectRows,
                   split: Split, spec: FitSpec) -> dict[str, DirectForecaster]:
    """Every variant with its members fitted again on `rows` (everything before the end of
    validation), each member once, keeping the first fits' weights and calibration."""
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
