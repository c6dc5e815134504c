"""What one fit of a timeframe needs, as one typed record: the data, the cut-off and the split,
the models' parameters, and how to run it (on Ray or in this process, with what fault tolerance).
The weekly job, the backtest, tuning and the benchmarks build one; every fit stage reads it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from engine.layout import ONE_TASK_BELOW, RunOptions

CALIBRATION_ORIGINS = 600  # tests pass fewer


@dataclass(frozen=True)
class FitSpec:
    data_dir: str | Path
    tickers: list[str]
    timeframe: str
    end: pd.Timestamp  # candles that open at or after it are not used
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train | valid | holdout of the usable span
    params: dict[str, Any] | None = None  # the recursive XGBoost's; None: its defaults
    direct_params: dict[str, dict[str, Any]] | None = None  # per direct model; None: their defaults
    use_ray: bool = True
    storage_path: str | None = None  # Ray Train checkpoints
    max_failures: int = 0  # Ray Train restarts of a failed worker group
    shuffle_targets: bool = False  # a control that can learn nothing real
    refit: bool = True  # every model fitted again on train + validation (deployed where `Timeframe.deploy_refit`)
    calibration_origins: int = CALIBRATION_ORIGINS
    train_workers: int | None = None  # Ray Train workers (None: one per two CPUs)
    one_task_below: int = ONE_TASK_BELOW  # candles: a smaller fit runs as one Ray task (engine.layout)

    @property
    def run(self) -> RunOptions:
        return RunOptions(self.use_ray, self.storage_path, self.train_workers, self.max_failures, self.one_task_below)

    def with_tickers(self, tickers: list[str]) -> FitSpec:
        return replace(self, tickers=list(tickers))
