"""storage.lake_reads: a kept read is what reading the file now would give, and a file is read
again only once it was written (or when earlier candles are asked for)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from storage.lake import Lake
from storage.lake_reads import LakeReads

COLUMNS = ["timestamp", "close"]


def _candles(days: int, start: str = "2024-01-01", level: float = 100.0) -> pd.DataFrame:
    stamps = pd.date_range(start, periods=days, freq="1D", tz="UTC")
    close = level + np.arange(days, dtype=float)
    return pd.DataFrame({"timestamp": stamps, "open": close, "high": close, "low": close, "close": close,
                         "volume": 1.0})


def _plain(lake: Lake, since: pd.Timestamp) -> dict[str, pd.DataFrame]:
    out = {}
    for ticker in lake.tickers():
        frame = lake.read(ticker, "1d", columns=COLUMNS)
        frame = frame[frame["timestamp"] >= since].reset_index(drop=True)
        if len(frame):
            out[ticker] = frame
    return out


def _same(got: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    assert sorted(got) == sorted(expected)
    for ticker, frame in expected.items():
        pd.testing.assert_frame_equal(got[ticker], frame)


def test_files_are_read_again_only_once_written_and_always_say_what_the_lake_holds(tmp_path) -> None:
    lake = Lake(tmp_path)
    for k in range(4):
        lake.write(f"X:C{k}USD", "1d", _candles(60, level=100.0 * (k + 1)))
    lake.write("X:OLDUSD", "1d", _candles(10, start="2023-01-01"))  # nothing after `since`
    reads = LakeReads(lake, COLUMNS)
    since = pd.Timestamp("2024-02-01", tz="UTC")
    _same(reads.since("1d", since), _plain(lake, since))
    assert reads.files_read == 5

    _same(reads.since("1d", since), _plain(lake, since))
    assert reads.files_read == 5  # nothing written since: nothing read

    lake.append("X:C1USD", "1d", _candles(1, start="2024-03-01", level=7.0))
    lake.write("X:C2USD", "1d", _candles(60, level=9.0))  # rewritten whole, the same size
    _same(reads.since("1d", since), _plain(lake, since))
    assert reads.files_read == 7

    later = pd.Timestamp("2024-02-20", tz="UTC")  # a later start is cut from what is kept
    _same(reads.since("1d", later), _plain(lake, later))
    assert reads.files_read == 7
    earlier = pd.Timestamp("2024-01-10")  # an earlier one reads again (naive times are UTC)
    _same(reads.since("1d", earlier), _plain(lake, earlier.tz_localize("UTC")))
    assert reads.files_read == 12


def test_a_coin_taken_out_of_the_lake_is_dropped(tmp_path) -> None:
    lake = Lake(tmp_path)
    lake.write("X:AUSD", "1d", _candles(30))
    lake.write("X:BUSD", "1d", _candles(30))
    reads = LakeReads(lake, COLUMNS)
    since = pd.Timestamp("2024-01-01", tz="UTC")
    assert sorted(reads.since("1d", since)) == ["X:AUSD", "X:BUSD"]
    Lake(tmp_path).path("X:BUSD", "1d").unlink()  # type: ignore[union-attr]
    assert sorted(reads.since("1d", since)) == ["X:AUSD"]


def test_a_read_without_timestamps_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        LakeReads(Lake(tmp_path), ["close"])
