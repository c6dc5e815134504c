"""A reader that keeps what it read of the lake and reads a file again only once it was written.

A serving replica refreshes its market-wide band every 5 minutes from every coin of its
timeframe, and an hourly lake changes once an hour (a daily one once a day): read afresh, most
refreshes would read every coin's file for nothing (500 coins: about 2.4 s). A file's version
is what every write changes (`Lake.version`: locally a new file by atomic rename, on an object
store a new object), so a kept frame is never older than the file it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from clock import as_utc
from storage.lake import Lake


@dataclass(frozen=True)
class _Kept:
    version: tuple[int, ...]
    since: pd.Timestamp
    frame: pd.DataFrame


class LakeReads:
    """`columns` of every coin's candles from a time on; kept per file with the file's version,
    and from the earliest time asked for (asking for earlier reads the file again)."""

    def __init__(self, lake: Lake, columns: list[str]) -> None:
        if "timestamp" not in columns:
            raise ValueError(f"columns {columns} must hold 'timestamp': the reads are cut by time")
        self.lake, self.columns = lake, list(columns)
        self._kept: dict[tuple[str, str], _Kept] = {}
        self.files_read = 0  # how many files were read: what the keeping saves is measured by it

    def since(self, timeframe: str, since: pd.Timestamp) -> dict[str, pd.DataFrame]:
        """Every coin's candles of `timeframe` at or after `since` (UTC); coins with none left out."""
        first = pd.Timestamp(as_utc(since))
        out, seen = {}, set()
        for ticker in self.lake.tickers():
            seen.add((ticker, timeframe))
            frame = self._frame(ticker, timeframe, first)
            kept = frame[frame["timestamp"] >= first]
            if len(kept):
                out[ticker] = kept.reset_index(drop=True)
        for gone in [key for key in self._kept if key[1] == timeframe and key not in seen]:
            del self._kept[gone]  # a coin taken out of the lake
        return out

    def _frame(self, ticker: str, timeframe: str, first: pd.Timestamp) -> pd.DataFrame:
        version = self.lake.version(ticker, timeframe)
        held = self._kept.get((ticker, timeframe))
        if version is not None and held is not None and held.version == version and held.since <= first:
            return held.frame
        frame = self.lake.read(ticker, timeframe, columns=self.columns)
        frame = frame[frame["timestamp"] >= first]  # `since` cuts again and renumbers: a kept one may start earlier
        if version is not None:  # a file was there to read
            self.files_read += 1
            self._kept[(ticker, timeframe)] = _Kept(version, first, frame)
        return frame
