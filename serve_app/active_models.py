"""The active forecaster of each timeframe, reloaded when training activates a new version.

`refresh()` asks the registry which version is active and, when it changed, loads the new one
next to the old and swaps one reference: requests already running finish on the old model, new
ones get the new model, and none fails during the switch.

`track_market(lake, now)` replays the band's market-wide adaptation of each active model over
the lake's coins (`training.band.market.MarketAdaptation`: from the end of validation for a newly
loaded model, then carrying the last track on over new candles, the validated band where the
lake is stale; a coin's file is read again only once it was written, `storage.lake_reads`), and
each forecast is widened by the widening in force now.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import replace

import numpy as np
import pandas as pd

from market_data.timeframes import spec
from storage.lake import Lake
from storage.lake_reads import LakeReads
from storage.registry import ModelRegistry
from storage.schema import ModelRecord
from training.artifact import load_forecaster
from training.band.market import MarketAdaptation
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
        self._market: dict[str, tuple[object, MarketAdaptation]] = {}  # each timeframe's, by model id
        self._reads: LakeReads | None = None  # the lake's timestamps and closes as last read
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
            served = [tf for tf in self.timeframes if tf in self._models]
        if entry is None:  # the operator's step goes to the log, the person gets what they can do
            log.warning("no active %s model: run jobs.weekly_training --timeframes %s", timeframe, timeframe)
            choice = f"; try {' or '.join(served)}" if served else ""
            raise NoActiveModel(f"no active {timeframe} model yet: {timeframe} forecasts are not available{choice}")
        return entry

    def versions(self) -> dict[str, str | None]:
        with self._lock:
            return {tf: (self._models[tf][0].version if tf in self._models else None) for tf in self.timeframes}

    def window(self, timeframe: str) -> int:
        return self.get(timeframe)[1].window

    def forecast(self, timeframe: str, candles: pd.DataFrame, steps: int) -> Forecast:
        record, forecaster = self.get(timeframe)
        return replace(forecaster.forecast(candles, steps, shift=self.market_shift(timeframe)),
                       model_id=str(record.id), model_version=record.version)

    def market_shift(self, timeframe: str) -> np.ndarray | None:
        """The active model's market-wide band widening now (steps, band units); None: the
        validated band (no adaptation, no replay yet, or stale candles)."""
        with self._lock:
            entry, kept = self._models.get(timeframe), self._market.get(timeframe)
        if entry is None or kept is None or kept[0] != entry[0].id:
            return None
        return kept[1].shift_now()

    def track_market(self, lake: Lake, now: pd.Timestamp) -> dict[str, str]:
        """Each active model's market-wide band widening now, from every coin the lake holds of
        its timeframe; returns what each timeframe's band does, for the log."""
        said = {}
        for tf in self.timeframes:
            with self._lock:
                entry = self._models.get(tf)
                kept = self._market.get(tf)
            if entry is None:
                continue
            record, forecaster = entry
            if kept is None or kept[0] != record.id:
                kept = (record.id, MarketAdaptation(forecaster.calibration.band, pd.Timedelta(hours=spec(tf).approx_hours)))
            reads = self._lake_reads(lake)
            said[tf] = f"{record.version}: " + kept[1].update(functools.partial(reads.since, tf), now)
            with self._lock:
                self._market[tf] = kept
        return said

    def _lake_reads(self, lake: Lake) -> LakeReads:
        if self._reads is None or self._reads.lake is not lake:
            self._reads = LakeReads(lake, ["timestamp", "close"])
        return self._reads
