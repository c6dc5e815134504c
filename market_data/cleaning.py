"""Cleaning of raw candles (UTC, sorted, gaps, duplicates, bad prices) plus candle sanity.

Every source's candles pass through here, so the lake and the serving path see the same rules.
Each rule logs how many rows it dropped, naming the input, so a bad feed is visible in the logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from market_data.source import CANDLE_COLUMNS, empty_candles

log = logging.getLogger(__name__)

API_COLUMNS = {"t": "timestamp", "o": "open", "h": "high", "l": "low", "c": "close", "v": "volume", "vw": "vwap"}


@dataclass
class CleaningReport:
    label: str
    rows_in: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def rows_out(self) -> int:
        return self.rows_in - sum(self.dropped.values())


def clean_candles(raw: pd.DataFrame, label: str = "candles") -> tuple[pd.DataFrame, CleaningReport]:
    """Rename API fields, UTC timestamps, sort, forward-fill gaps, dedupe keeping the last,
    drop non-positive prices, negative volume and candles whose high/low do not bound open/close."""
    report = CleaningReport(label=label, rows_in=len(raw))
    if raw.empty:
        return empty_candles(), report
    frame = raw.rename(columns=API_COLUMNS)
    missing = [c for c in CANDLE_COLUMNS[:-1] if c not in frame.columns]
    if missing:
        raise ValueError(f"{label}: raw candles lack columns {missing}; have {list(raw.columns)}")
    if "vwap" not in frame.columns:
        frame = frame.assign(vwap=np.nan)
    frame = frame[CANDLE_COLUMNS].copy()
    stamps = frame["timestamp"]
    if pd.api.types.is_numeric_dtype(stamps):
        frame["timestamp"] = pd.to_datetime(stamps, unit="ms", utc=True)
    else:
        frame["timestamp"] = pd.to_datetime(stamps, utc=True, format="mixed")
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ms, UTC]")
    price_cols = ["open", "high", "low", "close", "volume", "vwap"]
    frame[price_cols] = frame[price_cols].apply(pd.to_numeric, errors="coerce").astype("float64")
    frame = frame.sort_values("timestamp", kind="stable")

    # The document forward-fills missing values; a row with nothing to fill from is dropped.
    frame[price_cols[:-1]] = frame[price_cols[:-1]].ffill()
    _count(frame[price_cols[:-1]].isna().any(axis=1), "missing values", report)
    frame = frame[~frame[price_cols[:-1]].isna().any(axis=1)]

    dupes = frame["timestamp"].duplicated(keep="last")
    _count(dupes, "duplicate timestamps", report)
    frame = frame[~dupes]

    prices = frame[["open", "high", "low", "close"]]
    bad_price = (prices <= 0).any(axis=1)
    _count(bad_price, "non-positive price", report)
    bad_volume = frame["volume"] < 0
    _count(bad_volume & ~bad_price, "negative volume", report)
    frame = frame[~bad_price & ~bad_volume]

    body_hi = frame[["open", "close"]].max(axis=1)
    body_lo = frame[["open", "close"]].min(axis=1)
    insane = (frame["high"] < body_hi) | (frame["low"] > body_lo)
    _count(insane, "high/low not bounding open/close", report)
    frame = frame[~insane]

    # A VWAP outside the candle is a bad print; keep the candle, forget the VWAP.
    frame.loc[(frame["vwap"] <= 0) | (frame["vwap"] > frame["high"]) | (frame["vwap"] < frame["low"]), "vwap"] = np.nan
    if report.dropped:
        log.info("%s: cleaning dropped %s of %d rows", label,
                 ", ".join(f"{n} ({rule})" for rule, n in report.dropped.items()), report.rows_in)
    return frame.reset_index(drop=True), report


def _count(mask: pd.Series, rule: str, report: CleaningReport) -> None:
    count = int(mask.sum())
    if count:
        report.dropped[rule] = report.dropped.get(rule, 0) + count
