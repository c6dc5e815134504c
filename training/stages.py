"""What every fit of a timeframe starts with (timed stages, the candles up to a cut-off, the
purged time split) and ends with (`Fitted`: the calibrated candidates and what is deployed)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from engine.progress import Throttled, reporting
from features.profiles import profile_for
from market_data.timeframes import spec
from storage.lake import Lake
from training.dataset import Split, time_split, training_candles, validated_horizon
from training.spec import FitSpec

if TYPE_CHECKING:
    from training.forecaster import ForecastModel

HOLDOUT_ORIGINS = 600


@dataclass
class Fitted:
    """Candidates fitted and calibrated on one split's train and validation parts, and the refits
    of those that have one: the same model fitted again on train + validation, keeping the
    candidate's calibration (the only honest one: residuals of data its fit had not seen)."""

    candidates: dict[str, ForecastModel]
    candles: dict[str, pd.DataFrame]
    split: Split
    refits: dict[str, ForecastModel] = field(default_factory=dict)

    def add(self, other: Fitted) -> None:
        """Another model family's candidates and refits, fitted on the same candles and split."""
        self.candidates.update(other.candidates)
        self.refits.update(other.refits)

    def deployed(self, name: str, chosen: ForecastModel | None = None) -> ForecastModel:
        """What is deployed when `name` is chosen (as `chosen`: the candidate with the choice's
        metadata, or naive's stand-in; the candidate itself by default): its refit where it has one
        and the timeframe deploys refits (`Timeframe.deploy_refit`)."""
        chosen = self.candidates[name] if chosen is None else chosen
        refit = self.refits.get(name) if spec(chosen.timeframe).deploy_refit else None
        if refit is None:
            return chosen
        return refit.with_meta(**{**chosen.meta, **refit.meta})


@dataclass
class StageTimer:
    """Collects one line per stage (`name: counts in seconds`) and prints it as it goes."""

    prefix: str
    lines: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    echo: Callable[[str], None] = print

    def run(self, name: str, fn: Callable[[], Any], describe: Callable[[Any], str] = lambda _: "") -> Any:
        started = time.perf_counter()
        with reporting(Throttled(f"[{self.prefix}] {name:<10}", self.echo)):
            result = fn()
        elapsed = time.perf_counter() - started
        key, repeat = name, 2
        while key in self.seconds:  # a stage that runs twice (two models in one backtest) keeps both
            key, repeat = f"{name} #{repeat}", repeat + 1
        self.seconds[key] = round(elapsed, 2)
        line = f"[{self.prefix}] {name:<10} {describe(result)} ({elapsed:.1f}s)"
        self.lines.append(line)
        self.echo(line)
        return result


def load_candles(data_dir: str | Path, tickers: Iterable[str], timeframe: str, end: pd.Timestamp | None,
                 history: bool = False) -> dict[str, pd.DataFrame]:
    """Each ticker's lake candles before `end` (with `history`, only the fit's: `training_candles`),
    where enough of them for one validated forecast."""
    lake = Lake(data_dir)
    out = {}
    for ticker in tickers:
        frame = lake.read(ticker, timeframe)
        if history:
            frame = training_candles(frame, timeframe, end)
        elif end is not None:
            frame = frame[frame["timestamp"] < end].reset_index(drop=True)
        if len(frame) > profile_for(timeframe).warmup + validated_horizon(timeframe):
            out[ticker] = frame
    return out


def split_for(candles: dict[str, pd.DataFrame], timeframe: str, fractions: tuple[float, float, float]) -> Split:
    warm = profile_for(timeframe).warmup
    first = min(frame["timestamp"].iloc[warm] for frame in candles.values())
    last = max(frame["timestamp"].iloc[-1] for frame in candles.values())
    return time_split(first, last, timeframe, fractions)


def candles_and_split(timer: StageTimer, spec: FitSpec) -> tuple[dict[str, pd.DataFrame], Split]:
    data_dir, tickers, timeframe, end, fractions = spec.data_dir, spec.tickers, spec.timeframe, spec.end, spec.fractions
    candles = timer.run("candles", lambda: load_candles(data_dir, tickers, timeframe, end, history=True),
                        lambda c: f"{len(c)} symbols, {sum(len(f) for f in c.values())} candles")
    if not candles:
        raise ValueError(f"{timeframe}: no symbol in the lake has enough candles before {end}")
    split = timer.run("split", lambda: split_for(candles, timeframe, fractions),
                      lambda s: f"train < {s.train_end:%Y-%m-%d %H:%M}, valid {s.valid_start:%Y-%m-%d} to "
                                f"{s.valid_end:%Y-%m-%d}" + (f", holdout from {s.holdout_start:%Y-%m-%d}"
                                                             if fractions[2] > 0 else ""))
    return candles, split
