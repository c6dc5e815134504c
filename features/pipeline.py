"""The training table for one timeframe: lake candles of N symbols -> features, with Ray Data.

Each symbol is one unit of work (read its parquet file, `build_features`, drop warm-up rows);
Ray Data runs them in parallel and streams the result, so 500 symbols x 8,760 hourly rows never
have to sit in one process's memory: `write_feature_table` writes parquet as blocks arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.symbols import map_symbols, map_symbols_local
from features.build import WARMUP_COLUMN, build_features, feature_names
from storage.lake import Lake


def symbol_features(lake: Lake, ticker: str, timeframe: str, keep_candles: bool = False) -> pd.DataFrame:
    """Trustworthy feature rows of one symbol (warm-up dropped), keyed by symbol and timestamp."""
    candles = lake.read(ticker, timeframe)
    names = feature_names(timeframe)
    if candles.empty:
        return empty_table(timeframe, keep_candles)
    built = build_features(candles, timeframe)
    built = built[~built[WARMUP_COLUMN]]
    columns = (["open", "high", "low", "close", "volume"] if keep_candles else []) + names
    out = built[["timestamp", *columns]].copy()
    out.insert(0, "symbol", ticker)
    return out.reset_index(drop=True)


def empty_table(timeframe: str, keep_candles: bool = False) -> pd.DataFrame:
    columns = {"symbol": pd.Series(dtype=str), "timestamp": pd.Series(dtype="datetime64[ms, UTC]")}
    if keep_candles:
        columns.update({c: pd.Series(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")})
    columns.update({n: pd.Series(dtype=np.float32) for n in feature_names(timeframe)})
    return pd.DataFrame(columns)


def feature_table_local(data_dir: str | Path, tickers: Iterable[str], timeframe: str) -> pd.DataFrame:
    """The plain loop: the same table built in this process (the benchmark's baseline)."""
    frames = map_symbols_local(symbol_features, str(data_dir), tickers, timeframe=timeframe)
    return pd.concat(frames, ignore_index=True) if frames else empty_table(timeframe)


def feature_dataset(data_dir: str | Path, tickers: Iterable[str], timeframe: str, keep_candles: bool = False) -> Any:
    """A Ray Dataset of feature rows for `tickers`, one symbol per task."""
    return map_symbols(symbol_features, str(data_dir), tickers, lambda frames: pd.concat(frames, ignore_index=True),
                       timeframe=timeframe, keep_candles=keep_candles)


def write_feature_table(data_dir: str | Path, tickers: Iterable[str], timeframe: str, out_dir: str | Path) -> int:
    """Stream the feature table to parquet files under `out_dir`; returns the number of rows."""
    dataset = feature_dataset(data_dir, tickers, timeframe)
    dataset.write_parquet(str(out_dir))
    import pyarrow.dataset as pads

    return pads.dataset(str(out_dir), format="parquet").count_rows()
