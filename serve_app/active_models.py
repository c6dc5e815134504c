"""The active forecaster of each timeframe, reloaded when training activates a new version.

`refresh()` asks the registry which version is active and, when it changed, loads the new one
next to the old and swaps one reference: requests already running finish on the old model, new
ones get the new model, and none fails during the switch.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import pandas as pd

from storage.registry import ModelRegistry
from storage.schema import ModelRecord
from training.artifact import load_forecaster
from training.forecast import Forecast
from training.forecaster import ForecastModel

log = logging.getLogger(__name__)


class NoActiveModel(LookupError):
    """No model of this timeframe has been trained and activated yet."""


class ActiveModels:
    def __init__(self, registry: ModelRegistry, timeframes: list[str]) -> None:
        self.registry = registry
        self.timeframes = list(timeframes)
        self._models: dict[str, tuple[ModelRecord, ForecastModel]] = {}
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> list[str]:
        """Load newly activated versions; returns the timeframes that switched."""
        switched = []
        for tf in self.timeframes:
            record = self.registry.active(tf)
            current = self._models.get(tf)
            if record is None or (current is not None and current[0].id == record.id):
                continue
            try:
                forecaster = load_forecaster(self.registry.open_artifact(record))
            except Exception as exc:
                log.error("cannot load %s model %s (%s); keeping the current one", tf, record.version, exc)
                continue
            with self._lock:
                self._models[tf] = (record, forecaster)
            switched.append(tf)
            log.info("serving %s model %s", tf, record.version)
        return switched

    def get(self, timeframe: str) -> tuple[ModelRecord, ForecastModel]:
        with self._lock:
            entry = self._models.get(timeframe)
        if entry is None:
            raise NoActiveModel(f"no active {timeframe} model yet; run jobs.weekly_training --timeframes {timeframe}")
        return entry

    def versions(self) -> dict[str, str | None]:
        with self._lock:
            return {tf: (self._models[tf][0].version if tf in self._models else None) for tf in self.timeframes}

    def window(self, timeframe: str) -> int:
        return self.get(timeframe)[1].window

    def forecast(self, timeframe: str, candles: pd.DataFrame, steps: int) -> Forecast:
        record, forecaster = self.get(timeframe)
        return replace(forecaster.forecast(candles, steps), model_id=str(record.id), model_version=record.version)
