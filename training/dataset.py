"""Training rows (features + next-candle targets) for all top-N symbols, split by time.

Targets describe the next candle relative to the current close, in log space, so they are as
scale-free as the features: the close's log return, and how far the high and low reach beyond
the candle body (the upper and lower shadows). The forecaster rebuilds whole candles from them.

Splits are by time, shared by every symbol: train | gap | validation | gap | holdout, with gaps
as long as the horizon, so no training target (a direct model's reaches 30 candles ahead) and no
validation future reaches into the next part. Nothing is shuffled across time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.symbols import map_symbols, map_symbols_local
from features.build import WARMUP_COLUMN, build_features, feature_names
from features.profiles import profile_for
from market_data.timeframes import spec
from storage.lake import Lake

TARGETS = ["target_ret", "target_up", "target_down"]
PART_COLUMN = "part"  # a training row's part of the split, as `Split.codes` labels it
PART_CODES = {"train": 0, "valid": 1, "purge": 2}  # -1: none the fit uses (the holdout and its gap)


def validated_horizon(timeframe: str) -> int:
    """How far ahead held-out data can check this timeframe's forecasts (`Timeframe.validated_horizon`)."""
    return spec(timeframe).validated_horizon


def purge_candles(timeframe: str) -> int:
    """Candles between train, validation and holdout: the checked horizon, so no training target
    reaches the validation and no validation future the holdout. What must not cross is targets
    and futures; a feature reading earlier candles is no leak. (The gap used to be the longest
    indicator window, 250 candles: it left a daily model's training 250 days older than needed.)"""
    return validated_horizon(timeframe)


def next_candle_targets(candles: pd.DataFrame) -> pd.DataFrame:
    """Per row t: log(close[t+1] / close[t]), log(high[t+1] / max(open, close)[t+1]) and
    log(min(open, close)[t+1] / low[t+1]); NaN on the last row."""
    o, h, lo, c = (candles[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
    nxt = lambda a: np.concatenate([a[1:], [np.nan]])  # noqa: E731
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame({
            "target_ret": np.log(nxt(c) / c),
            "target_up": np.log(nxt(h) / np.maximum(nxt(o), nxt(c))),
            "target_down": np.log(np.minimum(nxt(o), nxt(c)) / nxt(lo)),
        }, index=candles.index)


def symbol_rows(candles: pd.DataFrame, ticker: str, timeframe: str) -> pd.DataFrame:
    """Feature rows of one symbol with their targets: warm-up and rows without a next candle dropped."""
    names = feature_names(timeframe)
    if len(candles) <= profile_for(timeframe).warmup + 1:
        return empty_rows(timeframe)
    built = build_features(candles.reset_index(drop=True), timeframe)
    targets = next_candle_targets(built)
    keep = ~built[WARMUP_COLUMN].to_numpy() & np.isfinite(targets.to_numpy()).all(axis=1)
    out = pd.concat([built.loc[keep, ["timestamp", *names]], targets.loc[keep].astype(np.float32)], axis=1)
    out.insert(0, "symbol", ticker)
    return out.reset_index(drop=True)


def empty_rows(timeframe: str) -> pd.DataFrame:
    columns = {"symbol": pd.Series(dtype=str), "timestamp": pd.Series(dtype="datetime64[ms, UTC]")}
    columns.update({n: pd.Series(dtype=np.float32) for n in feature_names(timeframe)})
    columns.update({t: pd.Series(dtype=np.float32) for t in TARGETS})
    return pd.DataFrame(columns)


def lake_rows(lake: Lake, ticker: str, timeframe: str, end: pd.Timestamp | None) -> pd.DataFrame:
    """`symbol_rows` of a ticker's lake candles before `end`."""
    return symbol_rows(training_candles(lake.read(ticker, timeframe), timeframe, end), ticker, timeframe)


def history_start(timeframe: str, end: pd.Timestamp) -> pd.Timestamp:
    """The first candle time a fit with cut-off `end` learns from: the timeframe's retention
    before `end`, all the lake held at `end`. So a backtest whose lake reaches further back (or
    was filled at its test end) trains on what the weekly job would have had at its train end."""
    return pd.Timestamp(end) - pd.Timedelta(days=spec(timeframe).retention_days)


def training_candles(candles: pd.DataFrame, timeframe: str, end: pd.Timestamp | None) -> pd.DataFrame:
    """The candles a fit with cut-off `end` learns from: opened before `end`, at or after
    `history_start`; all of them when `end` is None."""
    if end is None:
        return candles
    stamps = candles["timestamp"]
    return candles[(stamps < end) & (stamps >= history_start(timeframe, end))].reset_index(drop=True)


def rows_dataset(data_dir: str | Path, tickers: Iterable[str], timeframe: str, end: pd.Timestamp | None = None) -> Any:
    """The training rows of `tickers` as a Ray Dataset, one symbol per task."""
    return map_symbols(lake_rows, str(data_dir), tickers, lambda frames: pd.concat(frames, ignore_index=True),
                       timeframe=timeframe, end=end)


def rows_local(data_dir: str | Path, tickers: Iterable[str], timeframe: str, end: pd.Timestamp | None = None) -> pd.DataFrame:
    frames = map_symbols_local(lake_rows, str(data_dir), tickers, timeframe=timeframe, end=end)
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else empty_rows(timeframe)


class NotEnoughHistory(ValueError):
    """The candles span too little time for a purged train / validation / holdout split."""


@dataclass(frozen=True)
class Split:
    """Time boundaries: train < train_end; valid in [valid_start, valid_end); holdout >= holdout_start."""

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    valid_start: pd.Timestamp
    valid_end: pd.Timestamp
    holdout_start: pd.Timestamp
    holdout_end: pd.Timestamp  # the last candle known

    def part(self, stamps: pd.Series) -> pd.Series:
        """'train', 'valid', 'holdout' or 'gap' for each timestamp."""
        out = pd.Series("gap", index=stamps.index)
        out[stamps < self.train_end] = "train"
        out[(stamps >= self.valid_start) & (stamps < self.valid_end)] = "valid"
        out[stamps >= self.holdout_start] = "holdout"
        return out

    def bounds(self, part: str) -> tuple[pd.Timestamp | None, pd.Timestamp]:
        """[start, end) of 'train', 'valid', 'purge' (the gap between them) or 'refit' (all
        three: what a refit learns from); start None: from the first candle."""
        return {"train": (None, self.train_end), "purge": (self.train_end, self.valid_start),
                "valid": (self.valid_start, self.valid_end), "refit": (None, self.valid_end)}[part]

    def codes(self, stamps: np.ndarray) -> np.ndarray:
        """`PART_CODES` of each timestamp (datetime64 in UTC, or tz-aware), as int8; -1 outside
        train, purge and valid. For labelling rows in bulk (Arrow batches) where `part`'s
        strings would cost."""
        ms = pd.DatetimeIndex(stamps).as_unit("ms").asi8
        out = np.full(len(ms), -1, np.int8)
        for name in PART_CODES:
            start, end = self.bounds(name)
            keep = ms < _ceil_ms(end)
            out[keep if start is None else keep & (ms >= _ceil_ms(start))] = PART_CODES[name]
        return out

    def rows_of(self, frame: pd.DataFrame, part: str) -> pd.DataFrame:
        """The rows of `frame` whose timestamp falls in `part` (see `bounds`)."""
        start, end = self.bounds(part)
        keep = frame["timestamp"] < end
        return frame[keep if start is None else keep & (frame["timestamp"] >= start)]

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in self.__dict__.items()}


def _ceil_ms(stamp: pd.Timestamp) -> int:
    """The first whole millisecond at or after `stamp`: t < stamp exactly when t_ms < this, for
    timestamps in whole milliseconds (a split's bounds carry fractions of a candle)."""
    return -(-int(stamp.value) // 1_000_000)


def time_split(first: pd.Timestamp, last: pd.Timestamp, timeframe: str,
               fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> Split:
    """Cut [first, last] into train/valid/holdout with purge gaps of the longest indicator window."""
    step = pd.Timedelta(hours=spec(timeframe).approx_hours)
    gap = step * purge_candles(timeframe)
    gaps = 2 if fractions[2] > 0 else 1  # a backtest has no holdout here: its test period follows
    usable = (last - first) - gaps * gap
    if usable <= step * (3 * validated_horizon(timeframe)):
        raise NotEnoughHistory(
            f"{timeframe}: {first} to {last} is too short to split into train, validation and holdout "
            f"with {purge_candles(timeframe)}-candle gaps; more history is needed"
        )
    total = sum(fractions)
    train_end = first + usable * (fractions[0] / total)
    valid_start = train_end + gap
    valid_end = valid_start + usable * (fractions[1] / total) if fractions[2] > 0 else last + step
    holdout_start = valid_end + gap
    return Split(first, train_end, valid_start, valid_end, holdout_start, last)
