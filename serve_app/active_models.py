"""The active forecaster of each timeframe, reloaded when training activates a new version.

`refresh()` asks the registry which version is active and, when it changed, loads the new one
next to the old and swaps one reference: requests already running finish on the old model, new
ones get the new model, and none fails during the switch.

`track_market(lake, now)` replays the band's market-wide adaptation (`training.market_band`) of
each active model over the lake's coins (from the end of validation for a newly loaded model,
then carrying the last track on over new candles; a coin's file is read again only once it was
written, `storage.lake_reads`) and hands the widening in force now to the forecaster;
where the lake's newest candle is older than the forecast horizon, the band goes back to the
validated one (a widening that old no longer says how the market is moving).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import pandas as pd

from config import HORIZON
from market_data.timeframes import spec
from storage.lake import Lake
from storage.lake_reads import LakeReads
from storage.registry import ModelRegistry
from storage.schema import ModelRecord
from training.artifact import load_forecaster
from training.forecast import Forecast
from training.forecaster import ForecastModel
from training.market_band import MarketTrack, carried_on, market_track, naive_times, replay_since

log = logging.getLogger(__name__)


class NoActiveModel(LookupError):
    """No model of this timeframe has been trained and activated yet."""


class ActiveModels:
    def __init__(self, registry: ModelRegistry, timeframes: list[str]) -> None:
        self.registry = registry
        self.timeframes = list(timeframes)
        self._models: dict[str, tuple[ModelRecord, ForecastModel]] = {}
        self._lock = threading.Lock()
        self._tracks: dict[str, tuple[object, MarketTrack]] = {}  # the last market track per timeframe, by model id
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

    def track_market(self, lake: Lake, now: pd.Timestamp) -> dict[str, str]:
        """Each active model's market-wide band widening now, from every coin the lake holds of
        its timeframe; returns what each timeframe's band does, for the log."""
        said = {}
        for tf in self.timeframes:
            with self._lock:
                entry = self._models.get(tf)
            if entry is None:
                continue
            record, forecaster = entry
            cal = forecaster.calibration
            if cal.market_rate <= 0 or not cal.fitted_until:
                forecaster.market_widening = None
                said[tf] = f"{record.version} has no market-wide adaptation"
                continue
            track, coins = self._market_track(lake, tf, record, forecaster)
            newest, widening = track.last(HORIZON)
            step = pd.Timedelta(hours=spec(tf).approx_hours)
            if newest is None or newest < naive_times(pd.DatetimeIndex([now]))[0] - step * HORIZON:
                forecaster.market_widening = None
                said[tf] = (f"{record.version}: the lake's {tf} candles end {newest}; the band is the validated one "
                            f"until jobs.update_data brings newer ones")
                continue
            forecaster.market_widening = widening
            said[tf] = (f"{record.version}: band widened by {widening[0]:+.3f} (h1) / {widening[-1]:+.3f} (h{HORIZON}) "
                        f"band units, {coins} coins to {newest:%Y-%m-%d %H:%M}")
        return said

    def _market_track(self, lake: Lake, tf: str, record: ModelRecord,
                      forecaster: ForecastModel) -> tuple[MarketTrack, int]:
        """The model's market track up to the lake's newest candles, and over how many coins: the
        last one carried on (`market_band.carried_on`) where the model is the same, else replayed
        from the end of validation."""
        cal, window = forecaster.calibration, forecaster.profile.volatility_window
        step = pd.Timedelta(hours=spec(tf).approx_hours)
        kept = self._tracks.get(tf)
        track = None
        if kept is not None and kept[0] == record.id and len(kept[1].times):
            first = kept[1].times[kept[1].resumes_at(HORIZON)]
            candles = self._lake_reads(lake).since(tf, replay_since(first, cal, window, step))
            track = carried_on(kept[1], candles, cal, window, HORIZON)
        if track is None:
            candles = self._lake_reads(lake).since(tf, replay_since(pd.Timestamp(cal.fitted_until), cal, window, step))
            track = market_track(candles, cal, window, HORIZON)
        self._tracks[tf] = (record.id, track)
        return track, len(candles)

    def _lake_reads(self, lake: Lake) -> LakeReads:
        if self._reads is None or self._reads.lake is not lake:
            self._reads = LakeReads(lake, ["timestamp", "close"])
        return self._reads
