"""The training table for one timeframe: lake candles of N symbols -> features, with Ray Data.

Each symbol is one unit of work (read its parquet file, `build_features`, drop warm-up rows);
Ray Data runs them in parallel and streams the result, so 500 symbols x 8,760 hourly rows never
have to sit in one process's memory: `write_feature_table` writes parquet as blocks arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

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
    lake = Lake(data_dir)
    frames = [symbol_features(lake, t, timeframe) for t in tickers]
    return pd.concat(frames, ignore_index=True) if frames else empty_table(timeframe)


def _symbol_features_batch(batch: pd.DataFrame, data_dir: str, timeframe: str, keep_candles: bool) -> pd.DataFrame:
    """Ray Data task: a batch of tickers in, their feature rows out."""
    lake = Lake(data_dir)
    frames = [symbol_features(lake, t, timeframe, keep_candles) for t in batch["symbol"]]
    return pd.concat(frames, ignore_index=True)


def feature_dataset(data_dir: str | Path, tickers: Iterable[str], timeframe: str, keep_candles: bool = False):
    """A Ray Dataset of feature rows for `tickers`, one symbol per task (tasks free their CPUs
    as soon as they finish, so a Ray Train run that follows can have them)."""
    import ray

    tickers = list(tickers)
    symbols = ray.data.from_items([{"symbol": t} for t in tickers], override_num_blocks=max(1, len(tickers)))
    return symbols.map_batches(
        _symbol_features_batch,
        fn_kwargs={"data_dir": str(data_dir), "timeframe": timeframe, "keep_candles": keep_candles},
        batch_size=1,
        batch_format="pandas",
        num_cpus=1,
    )


def write_feature_table(data_dir: str | Path, tickers: Iterable[str], timeframe: str, out_dir: str | Path) -> int:
    """Stream the feature table to parquet files under `out_dir`; returns the number of rows."""
    dataset = feature_dataset(data_dir, tickers, timeframe)
    dataset.write_parquet(str(out_dir))
    import pyarrow.dataset as pads

    return pads.dataset(str(out_dir), format="parquet").count_rows()
