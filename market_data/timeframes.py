"""What each timeframe means, in one record: the API's multiplier and timespan, its length, how
candles group, how long the lake keeps them, which feature profile it uses, and how far ahead
held-out data can check a forecast. A profile's contents (indicator windows, warm-up, serving
window) are in `features.profiles`, which reads the profile's name from here."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

TIMEFRAMES: tuple[str, ...] = ("1h", "4h", "1d", "1w", "1m")
HORIZON = 30  # candles every forecast covers: what training checks and the API's most steps


@dataclass(frozen=True)
class Timeframe:
    name: str
    multiplier: int  # the aggregates API's `multiplier`
    timespan: str  # the aggregates API's `timespan`
    rule: str  # pandas resample rule for aggregating finer candles into this one
    approx_hours: float  # for sizing requests; months and weeks are not fixed lengths
    retention_days: int  # the lake keeps this much history (the retention policy in README.md)
    # `features.profiles`: the usual indicator windows where years of candles exist; short ones
    # where retention holds only 260 weeks or 60 months
    profile: str
    # calendar cycles shorter than a year that its candles resolve, as features (`features.indicators.calendar`)
    cycles: tuple[str, ...]
    # How far ahead forecasts can be checked on held-out data: all HORIZON steps, except where the
    # retained history is too short (60 monthly candles cannot hold training rows, validation and
    # holdout origins with 30 known months after each). Beyond it a forecast is naive with
    # extrapolated bands.
    validated_horizon: int = HORIZON
    # Whether the model deployed is its refit on train + validation (the trees and calibration
    # validation chose, fitted again with the most recent candles) rather than the first fit:
    # bench.honesty found intraday refits worse (bench/README.md); weekly and monthly as daily.
    deploy_refit: bool = True

    def offset(self) -> pd.DateOffset:
        """The calendar step between consecutive candle open times."""
        return pd.tseries.frequencies.to_offset(self.rule)

    def next_open(self, opened_at: pd.Timestamp, steps: int = 1) -> pd.Timestamp:
        return opened_at + steps * self.offset()


# Weeks open on Monday 00:00 UTC (ISO weeks), months on the first day 00:00 UTC.
TIMEFRAME_SPECS: dict[str, Timeframe] = {
    "1h": Timeframe("1h", 1, "hour", "1h", 1.0, retention_days=365, profile="standard",
                    cycles=("hour", "weekday"), deploy_refit=False),
    "4h": Timeframe("4h", 4, "hour", "4h", 4.0, retention_days=1095, profile="standard",
                    cycles=("hour", "weekday"), deploy_refit=False),
    "1d": Timeframe("1d", 1, "day", "1D", 24.0, retention_days=1825, profile="standard",
                    cycles=("weekday",)),
    "1w": Timeframe("1w", 1, "week", "W-MON", 24.0 * 7, retention_days=1825, profile="compact",
                    cycles=("month",)),
    "1m": Timeframe("1m", 1, "month", "MS", 24.0 * 30.44, retention_days=1825, profile="monthly",
                    cycles=("month",), validated_horizon=3),
}
assert tuple(TIMEFRAME_SPECS) == TIMEFRAMES


def spec(timeframe: str) -> Timeframe:
    try:
        return TIMEFRAME_SPECS[timeframe]
    except KeyError:
        raise ValueError(f"timeframe {timeframe!r} is not one of {', '.join(TIMEFRAMES)}") from None


def bucket_start(stamps: pd.Series, timeframe: str) -> pd.Series:
    """The open time of the `timeframe` candle that each timestamp falls in."""
    tf = spec(timeframe)
    if tf.rule == "W-MON":
        day = stamps.dt.floor("1D")
        return day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    if tf.rule == "MS":
        return stamps.dt.floor("1D") - pd.to_timedelta(stamps.dt.day - 1, unit="D")
    return stamps.dt.floor(tf.rule)


def aggregate(candles: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Aggregate finer candles into `timeframe` candles (open first, high max, low min, close last,
    volume summed, VWAP volume-weighted). The last bucket may be partial, like the API's."""
    if candles.empty:
        return candles.copy()
    frame = candles.sort_values("timestamp")
    key = bucket_start(frame["timestamp"], timeframe)
    has_vwap = "vwap" in frame.columns
    work = frame.assign(
        _bucket=key,
        _pv=(frame["vwap"] if has_vwap else frame["close"]).to_numpy() * frame["volume"].to_numpy(),
    )
    grouped = work.groupby("_bucket", sort=True)
    out = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
        }
    )
    if has_vwap:
        pv = grouped["_pv"].sum()
        out["vwap"] = (pv / out["volume"]).where(out["volume"] > 0)
    out.index.name = "timestamp"
    return out.reset_index()
