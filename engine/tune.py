"""Ray Tune, for parameter sweeps: a trial function reports its metric as it goes, ASHA stops the
clearly worse trials early, and the trials run in parallel on the cluster's CPUs. The sweep's
space is described with `Between` (plain data), so the module that defines it never imports Ray.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Between:
    """A parameter drawn uniformly between `low` and `high` (`log`: uniformly in log space;
    `integer`: whole numbers, `high` excluded)."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def sampler(self) -> Any:
        from ray import tune

        if self.integer:
            return tune.randint(int(self.low), int(self.high))
        return tune.loguniform(self.low, self.high) if self.log else tune.uniform(self.low, self.high)


def report_trial(metrics: dict[str, Any]) -> None:
    """Inside a trial: one report (ASHA's time unit is the number of reports)."""
    from ray import tune

    tune.report(metrics)


@dataclass(frozen=True)
class SweepResult:
    trials: pd.DataFrame  # one row per trial: its last metrics and its configuration (config/<name>)
    best_config: dict[str, Any]
    best_metrics: dict[str, Any]


def sweep(trial: Callable[..., None], space: dict[str, Any], metric: str, trials: int, max_reports: int,
          name: str, **shared: Any) -> SweepResult:
    """Run `trials` configurations drawn from `space` (values or `Between`), one CPU each, as
    `trial(config, **shared)`; `shared` goes to the object store once. Lower `metric` is better."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    trainable = tune.with_resources(tune.with_parameters(trial, **shared), {"cpu": 1})
    param_space = {k: v.sampler() if isinstance(v, Between) else v for k, v in space.items()}
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric=metric, mode="min", num_samples=trials,
                                    scheduler=ASHAScheduler(max_t=max(1, max_reports), grace_period=2,
                                                            reduction_factor=3)),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="ray-tune-"), name=name, verbose=0),
    )
    results = tuner.fit()
    best = results.get_best_result(metric=metric, mode="min")
    return SweepResult(results.get_dataframe(), dict(best.config), dict(best.metrics))
