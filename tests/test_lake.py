"""The parquet lake: layout, dedup on append, retention, atomic writes, corrupt files reported."""

import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storage.lake import Lake, LakeCorruptError


def candles(start: str, n: int, freq: str = "1D", base: float = 100.0) -> pd.DataFrame:
    ts = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    close = base * np.exp(np.cumsum(np.full(n, 0.001)))
    return pd.DataFrame({"timestamp": ts, "open": close, "high": close * 1.01, "low": close * 0.99,
                         "close": close, "volume": np.arange(1, n + 1, dtype=float)})


def test_layout_and_roundtrip(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.write("X:BTCUSD", "1h", candles("2024-01-01", 10, "1h"))
    assert (tmp_path / "X_BTCUSD" / "1h_ohlcv.parquet").is_file()
    back = lake.read("X:BTCUSD", "1h")
    assert len(back) == 10 and str(back["timestamp"].dtype) == "datetime64[ms, UTC]"
    assert back["vwap"].isna().all()
    assert list(lake.tickers()) == ["X:BTCUSD"]
    assert lake.read("X:ETHUSD", "1h").empty
    assert lake.last_timestamp("X:BTCUSD", "1h") == pd.Timestamp("2024-01-01 09:00", tz="UTC")
    with pytest.raises(ValueError, match="timeframe"):
        lake.path("X:BTCUSD", "5m")


def test_append_dedupes_keeping_newest_and_trims(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    as_of = datetime(2024, 12, 31, tzinfo=timezone.utc)
    lake.append("X:ETHUSD", "1d", candles("2019-01-01", 2000), as_of=as_of)
    stored = lake.read("X:ETHUSD", "1d")
    assert stored["timestamp"].min() >= pd.Timestamp("2020-01-02", tz="UTC")  # 1825 days before as_of
    newer = candles(str(stored["timestamp"].iloc[-1].date()), 3, base=5.0)  # overlaps the last stored day
    merged = lake.append("X:ETHUSD", "1d", newer, as_of=as_of)
    assert merged["timestamp"].is_unique and merged["timestamp"].is_monotonic_increasing
    assert len(merged) == len(stored) + 2
    overlap = merged[merged["timestamp"] == newer["timestamp"].iloc[0]]
    assert overlap["close"].item() == pytest.approx(newer["close"].iloc[0])  # the re-sent candle wins


def test_trim_applies_retention_per_timeframe(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    as_of = datetime(2024, 12, 31, tzinfo=timezone.utc)
    lake.write("X:BTCUSD", "1h", candles("2023-06-01", 24 * 600, "1h"))
    dropped = lake.trim("X:BTCUSD", "1h", as_of=as_of)
    kept = lake.read("X:BTCUSD", "1h")
    assert dropped > 0 and kept["timestamp"].min() >= pd.Timestamp("2024-01-01", tz="UTC")
    assert lake.trim("X:BTCUSD", "1h", as_of=as_of) == 0


def test_corrupt_file_is_reported_with_its_path_and_left_alone(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    path = lake.path("X:BTCUSD", "1d")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(LakeCorruptError, match=str(path)):
        lake.read("X:BTCUSD", "1d")
    with pytest.raises(LakeCorruptError):
        lake.append("X:BTCUSD", "1d", candles("2024-01-01", 3))
    assert path.read_bytes() == b"PAR1 this is not parquet"


WRITER = textwrap.dedent(
    """
    import sys, numpy as np, pandas as pd
    from storage.lake import Lake
    n = 3_000_000
    ts = pd.date_range("2000-01-01", periods=n, freq="1min", tz="UTC")
    x = np.random.default_rng(0).random(n) + 1
    frame = pd.DataFrame({"timestamp": ts, "open": x, "high": x + 1, "low": x - 0.5, "close": x, "volume": x})
    print("writing", flush=True)
    while True:
        Lake(sys.argv[1]).write("X:BTCUSD", "1h", frame)
    """
)


@pytest.mark.parametrize("delay_s", [0.05, 0.3, 0.9])
def test_writer_killed_mid_write_leaves_previous_file_intact(tmp_path: Path, delay_s: float) -> None:
    lake = Lake(tmp_path)
    original = candles("2024-01-01", 50, "1h")
    lake.write("X:BTCUSD", "1h", original)
    before = lake.read("X:BTCUSD", "1h")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(delay_s)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    after = lake.read("X:BTCUSD", "1h")  # must not raise
    if len(after) == len(before):
        pd.testing.assert_frame_equal(after, before)
    else:  # the writer finished a whole file before it was killed
        assert len(after) == 3_000_000 and after["timestamp"].is_monotonic_increasing
