"""The parquet lake: one OHLCV file per symbol and timeframe, `DATA_DIR/X_BTCUSD/1h_ohlcv.parquet`.

`DATA_DIR` is a local folder or a pyarrow filesystem URI such as `s3://bucket/lake` (see
`storage.location`). Writes are atomic: locally a temporary file in the same folder, fsync,
rename, fsync of the folder; on an object store one PUT of the whole file. A reader sees either
the old file or the new one, never half of one, even if the writer is killed.
A file that exists but cannot be read is reported with its path and left alone: it may be the
only copy of years of candles.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from clock import as_utc, utc_now
from market_data.timeframes import TIMEFRAME_SPECS, TIMEFRAMES
from storage.location import Location, is_remote

RETENTION_DAYS: dict[str, int] = {name: tf.retention_days for name, tf in TIMEFRAME_SPECS.items()}

OHLCV_COLUMNS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume", "vwap")

SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
        ("vwap", pa.float64()),
    ]
)


class LakeCorruptError(RuntimeError):
    """A lake file exists but is not a readable OHLCV parquet file."""


def ticker_dirname(ticker: str) -> str:
    """`X:BTCUSD` -> `X_BTCUSD` (`:` becomes `_` in folder names)."""
    if not ticker or "/" in ticker or ticker in (".", ".."):
        raise ValueError(f"ticker {ticker!r} cannot name a lake folder")
    return ticker.replace(":", "_")


def dirname_ticker(dirname: str) -> str:
    """Inverse of `ticker_dirname` for the `X_` crypto prefix."""
    return dirname.replace("_", ":", 1)


def empty_frame() -> pd.DataFrame:
    return SCHEMA.empty_table().to_pandas()


def normalize(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce a candle frame to the lake schema: UTC ms timestamps, float64 prices, a vwap column."""
    missing = [c for c in OHLCV_COLUMNS[:-1] if c not in frame.columns]
    if missing:
        raise ValueError(f"candles lack columns {missing}; have {list(frame.columns)}")
    out = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[ms, UTC]"),
            **{c: frame[c].astype("float64") for c in ("open", "high", "low", "close", "volume")},
            "vwap": frame["vwap"].astype("float64") if "vwap" in frame.columns else float("nan"),
        }
    )
    return out.reset_index(drop=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` so that no reader ever observes a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


class Lake:
    """Read, append and trim OHLCV candles under one root folder."""

    def __init__(self, root: str | Path) -> None:
        self.remote = is_remote(root)
        self.location = Location.of(root) if self.remote else None
        self.root = Path(root) if not self.remote else None

    def path(self, ticker: str, timeframe: str) -> Path | str:
        """The file's local path, or its path on the remote filesystem."""
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"timeframe {timeframe!r} is not one of {TIMEFRAMES}")
        name = f"{timeframe}_ohlcv.parquet"
        if self.location is not None:
            return self.location.child(ticker_dirname(ticker), name)
        assert self.root is not None  # a lake is either remote (location) or local (root)
        return self.root / ticker_dirname(ticker) / name

    def exists(self, ticker: str, timeframe: str) -> bool:
        path = self.path(ticker, timeframe)
        return self.location.is_file(path) if self.location is not None else Path(path).exists()

    def read(self, ticker: str, timeframe: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Candles sorted by time; an empty frame when the lake has none for this pair."""
        path = self.path(ticker, timeframe)
        if not self.exists(ticker, timeframe):
            frame = empty_frame()
            return frame[columns] if columns else frame
        try:
            table = pq.read_table(path, columns=columns, schema=SCHEMA,
                                  filesystem=self.location.fs if self.location is not None else None)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise LakeCorruptError(f"lake file {path} is unreadable ({exc}); left in place for inspection") from exc
        return table.to_pandas()

    def version(self, ticker: str, timeframe: str) -> tuple[int, ...] | None:
        """What every write of the file changes, for a reader that keeps what it read: locally
        the inode, modification time and size (an atomic write is a new file), on an object store
        the modification time and size (S3 tells the time to the second: a rewrite of the same size
        within the second of the last read goes unseen until the file's next write). None when the
        lake has no such file, or its store tells no modification time (then nothing read of it can
        be kept)."""
        path = self.path(ticker, timeframe)
        if self.location is not None:
            info = self.location.fs.get_file_info(str(path))
            if info.type != pafs.FileType.File or info.mtime_ns is None:
                return None
            return (info.mtime_ns, info.size or 0)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def last_timestamp(self, ticker: str, timeframe: str) -> pd.Timestamp | None:
        stamps = self.read(ticker, timeframe, columns=["timestamp"])["timestamp"]
        return None if stamps.empty else stamps.iloc[-1]

    def write(self, ticker: str, timeframe: str, candles: pd.DataFrame) -> None:
        frame = normalize(candles).sort_values("timestamp", kind="stable")
        if frame["timestamp"].duplicated().any():
            raise ValueError(f"candles for {ticker} {timeframe} hold duplicate timestamps")
        table = pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
        if self.location is not None:
            buffer = pa.BufferOutputStream()
            pq.write_table(table, buffer, compression="zstd")
            self.location.write_bytes(str(self.path(ticker, timeframe)), buffer.getvalue().to_pybytes())
        else:
            write_parquet_atomic(table, Path(self.path(ticker, timeframe)))

    def append(
        self, ticker: str, timeframe: str, new: pd.DataFrame, as_of: datetime | None = None
    ) -> pd.DataFrame:
        """Merge `new` into the stored candles (a re-sent timestamp takes the newest values),
        trim to the retention of the timeframe, write atomically, and return what was written."""
        merged = pd.concat([self.read(ticker, timeframe), normalize(new)], ignore_index=True)
        merged = merged.drop_duplicates(subset="timestamp", keep="last")
        merged = trim_to_retention(merged, timeframe, as_of)
        self.write(ticker, timeframe, merged)
        return merged.sort_values("timestamp").reset_index(drop=True)

    def trim(self, ticker: str, timeframe: str, as_of: datetime | None = None) -> int:
        """Drop candles older than the retention period; returns how many were dropped."""
        frame = self.read(ticker, timeframe)
        kept = trim_to_retention(frame, timeframe, as_of)
        if len(kept) != len(frame):
            self.write(ticker, timeframe, kept)
        return len(frame) - len(kept)

    def tickers(self) -> Iterator[str]:
        if self.location is not None:
            for name in self.location.dirs(self.location.path):
                if any(f.endswith("_ohlcv.parquet") for f in self.location.files(self.location.child(name))):
                    yield dirname_ticker(name)
            return
        if not self.root.exists():
            return
        for child in sorted(self.root.iterdir()):
            if child.is_dir() and any(child.glob("*_ohlcv.parquet")):
                yield dirname_ticker(child.name)


def trim_to_retention(frame: pd.DataFrame, timeframe: str, as_of: datetime | None = None) -> pd.DataFrame:
    """Keep candles newer than `as_of` minus the retention of `timeframe`.

    Candles after `as_of` are kept: a historical re-run must never delete newer data."""
    now = pd.Timestamp(utc_now() if as_of is None else as_utc(as_of))
    cutoff = now - timedelta(days=RETENTION_DAYS[timeframe])
    return frame[frame["timestamp"] >= cutoff]
