"""Training rows for the direct models: what is known at an origin, and all 30 horizons after it.

A direct model predicts the whole path at once, so each row carries the close's cumulative log
return for h = 1..30, divided by the origin's recent volatility times sqrt(h) (`z` targets): a
calm coin and a wild one, a 1-step and a 30-step move, all land on the same unit scale, which is
what lets one model serve every coin and every horizon. Forecasts multiply the scale back.

Beside the origin's features (`x`, for the tree models) each row carries the last `SEQ_LEN`
rows of a compact set of sequence features (`seq`, for the LSTM). Overlapping 30-step targets
of neighbouring origins say nearly the same thing, so a symbol's origins may be thinned to every
`stride`-th candle to keep the largest universes in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from engine.layout import RunOptions
from engine.symbols import gather_symbols
from features.build import WARMUP_COLUMN, build_features, feature_names
from features.profiles import profile_for
from market_data.timeframes import HORIZON
from storage.lake import Lake
from training.calibration import horizon_scale
from training.dataset import Split, training_candles

SEQ_LEN = 16
SEQUENCE_GROUPS = frozenset({"returns", "volatility", "range", "volume", "statistics", "calendar"})
Z_CLIP = 6.0  # |z| beyond this is a data error or a listing spike, not a pattern to learn
MAX_TRAIN_ROWS = 200_000


def sequence_features(timeframe: str) -> list[str]:
    """The LSTM's inputs: returns, volatility, ranges, volume and statistics; not the 60 candlestick
    flags and moving-average ratios the tree models see at the origin."""
    return feature_names(timeframe, set(SEQUENCE_GROUPS))


def horizon_targets(close: np.ndarray, sigma: np.ndarray, horizon: int = HORIZON) -> np.ndarray:
    """(rows x horizon) z targets: log(close[t+h] / close[t]) / (sigma[t] sqrt(h)); NaN where the
    future is unknown or sigma is not positive; clipped to +-Z_CLIP."""
    n = len(close)
    log_close = np.log(close.astype(np.float64))
    out = np.full((n, horizon), np.nan)
    for h in range(1, horizon + 1):
        if h < n:
            out[: n - h, h - 1] = log_close[h:] - log_close[:-h]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = out / horizon_scale(np.where(sigma > 0, sigma, np.nan), horizon)
    return np.clip(z, -Z_CLIP, Z_CLIP)


@dataclass
class DirectRows:
    """Origins of one or many symbols: every array has one row per origin."""

    symbol: np.ndarray  # str
    timestamp: np.ndarray  # datetime64[ms], UTC
    x: np.ndarray  # (n, features) float32
    seq: np.ndarray  # (n, SEQ_LEN, sequence features) float32
    y: np.ndarray  # (n, HORIZON) float32 z targets

    def __len__(self) -> int:
        return len(self.symbol)

    def take(self, mask: np.ndarray) -> DirectRows:
        return DirectRows(*(getattr(self, f.name)[mask] for f in fields(self)))

    def as_batch(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def concat(cls, parts: list[DirectRows] | list[dict[str, np.ndarray]]) -> DirectRows:
        batches = [p.as_batch() if isinstance(p, DirectRows) else p for p in parts]
        if len(batches) == 1:  # one group (the plain loop's): no copy
            return cls(**{f.name: batches[0][f.name] for f in fields(cls)})
        return cls(**{f.name: np.concatenate([b[f.name] for b in batches]) for f in fields(cls)})

    @classmethod
    def empty(cls, timeframe: str) -> DirectRows:
        return cls(np.array([], dtype=object), np.array([], dtype="datetime64[ms]"),
                   np.zeros((0, len(feature_names(timeframe))), np.float32),
                   np.zeros((0, SEQ_LEN, len(sequence_features(timeframe))), np.float32),
                   np.zeros((0, HORIZON), np.float32))

    def split(self, split: Split) -> dict[str, DirectRows]:
        """'train', 'valid', 'holdout', and 'refit': every origin before the end of validation
        (train, the purge gap and validation), what a refit learns from."""
        stamps = pd.Series(pd.to_datetime(self.timestamp, utc=True))
        parts = split.part(stamps).to_numpy()
        return {**{name: self.take(parts == name) for name in ("train", "valid", "holdout")},
                "refit": self.take((stamps < split.valid_end).to_numpy())}


def symbol_direct_rows(candles: pd.DataFrame, ticker: str, timeframe: str, stride: int = 1) -> DirectRows:
    """Origins of one symbol with a full sequence behind them and all 30 horizons known after."""
    profile = profile_for(timeframe)
    if len(candles) <= profile.warmup + SEQ_LEN + HORIZON:
        return DirectRows.empty(timeframe)
    built = build_features(candles.reset_index(drop=True), timeframe)
    names, seq_names = feature_names(timeframe), sequence_features(timeframe)
    good = ~built[WARMUP_COLUMN].to_numpy()
    # an origin needs SEQ_LEN trustworthy feature rows in a row, ending at it
    runs = np.convolve(good.astype(int), np.ones(SEQ_LEN, dtype=int), mode="full")[: len(good)]
    sigma = built[profile.volatility_feature].to_numpy(np.float64)
    y = horizon_targets(built["close"].to_numpy(), sigma)
    ends = np.flatnonzero((runs == SEQ_LEN) & np.isfinite(y).all(axis=1))
    ends = ends[(ends - ends[0]) % stride == 0] if len(ends) else ends
    if not len(ends):
        return DirectRows.empty(timeframe)
    seq_matrix = built[seq_names].to_numpy(np.float32)
    window = ends[:, None] + np.arange(-SEQ_LEN + 1, 1)[None, :]
    return DirectRows(
        symbol=np.full(len(ends), ticker, dtype=object),
        timestamp=pd.to_datetime(built["timestamp"], utc=True).dt.tz_localize(None).to_numpy("datetime64[ms]")[ends],
        x=built[names].to_numpy(np.float32)[ends],
        seq=seq_matrix[window],
        y=y[ends].astype(np.float32),
    )


def thinning_stride(candle_counts: Iterable[int], max_rows: int = MAX_TRAIN_ROWS) -> int:
    """Every how many candles to take an origin so that about `max_rows` origins remain."""
    total = sum(candle_counts)
    return max(1, int(np.ceil(total / max_rows)))


def lake_direct_rows(lake: Lake, ticker: str, timeframe: str, end: pd.Timestamp | None, stride: int) -> DirectRows:
    """`symbol_direct_rows` of a ticker's lake candles before `end`."""
    return symbol_direct_rows(training_candles(lake.read(ticker, timeframe), timeframe, end), ticker, timeframe, stride)


HERE = RunOptions(use_ray=False)


class _ConcatBatch:
    """One group of symbols' direct rows, as arrays (an empty group keeps the columns' shapes)."""

    def __init__(self, timeframe: str) -> None:
        self.timeframe = timeframe

    def __call__(self, parts: list[DirectRows]) -> dict[str, np.ndarray]:
        return DirectRows.concat([p for p in parts if len(p)] or [DirectRows.empty(self.timeframe)]).as_batch()


def direct_rows(data_dir: str | Path, tickers: list[str], timeframe: str, end: pd.Timestamp | None, stride: int = 1,
                run: RunOptions = HERE) -> DirectRows:
    """The direct rows of `tickers`, one task per group of symbols on Ray (`engine.symbols`),
    gathered here: the LSTM needs each origin's sequence whole, so the rows travel as arrays."""
    groups = gather_symbols(run, lake_direct_rows, str(data_dir), tickers, _ConcatBatch(timeframe),
                            timeframe=timeframe, end=end, stride=stride)
    return DirectRows.concat([g for g in groups if len(g["symbol"])] or [DirectRows.empty(timeframe)])
