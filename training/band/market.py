"""The band's market-wide adaptation: how far to widen (or narrow) every coin's band now, from how
the band has covered all coins of the timeframe since its quantiles were fitted.

Coins' volatility moves together, so a band fitted on validation is too narrow or too wide for
all of them at once when the market's regime turns, and a test window's coverage strays with it
(bench/README.md, #32: a half-year of daily candles covered 0.91 at h = 30, a quarter of 4-hourly
ones 0.69). Adaptive conformal inference (Gibbs and Candes 2021) pooled over the market: at each
candle since the fit, each horizon's band moves out by `rate` x (share of coins it missed - 0.20)
for every origin whose outcome that candle made known, so the band drifts to where it misses 20 %
of the market's moves in the current regime. One coin's own misses are too few and too noisy
for that: tracking them cost 4-6 % of the interval score at h = 30 (bench/README.md); the
market's share of misses moves the band by the regime, not by one coin's luck.

Stateless: the replay starts at the end of the fit's validation period (`Band.fitted_until`,
where the band is the validated one by definition) and is recomputed from the candles, so a
service or a backtest that replays the same candles states the same band. A serving replica
(`MarketAdaptation`) carries its last track on over new candles (`carried_on`), which states
the same band as the whole replay at the cost of a horizon's origins, and serves the validated
band once its candles are stale; a backtest replays once per band (`MarketReplay`), shared by
the candidates of one fit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_data.timeframes import HORIZON
from training.band.band import Band
from training.band.quantiles import BAND_MISS

# Step of the market-wide adaptation per candle at h = 30, in band units per unit of the miss
# share's excess, per timeframe; shorter horizons step further (`horizon_rates`). bench.band_scale
# on the 13 real test windows (bench/README.md, #32): a larger step keeps each window's coverage
# nearer 0.80 and costs sharpness at h = 30 (the band follows each regime's misses 30 candles
# late); these are about the smallest that kept every window's coverage interval around 0.80 at
# h = 30 (1d: 0.02 moved a half-year too little, 0.1 cost 3 % of the pooled score; 4h: 0.05 cost
# 9 %). Hourly and 4-hourly shares of misses change little from one candle to the next, so they
# take smaller steps. Chosen on those windows, the only real test windows there are; weekly and
# monthly candles have none, so their bands do not adapt.
MARKET_RATES = {"1h": 0.01, "4h": 0.015, "1d": 0.05}


def market_rate(timeframe: str) -> float:
    return MARKET_RATES.get(timeframe, 0.0)


def horizon_rates(rate: float, horizons: int) -> np.ndarray:
    """The step at each horizon: `rate` at h = 30, times sqrt(30 / h) nearer. An h-step outcome
    says something new every candle only at h = 1 (later ones share most of their path with the
    previous origin's), so a short horizon can follow the market faster at the same noise; with
    the step of h = 30 at every horizon one 4-hourly quarter's 1-step band over-covered (0.832
    [0.801, 0.863]); with 30 / h (the full ratio) the 1-step score lost 1 %."""
    return rate * np.sqrt(HORIZON / np.arange(1, horizons + 1))


COIN_CHUNK = 64  # coins scaled at once: the scale at every candle is coins x candles x horizons


def market_widening(z: np.ndarray, lo: np.ndarray, hi: np.ndarray, rate: float | np.ndarray,
                    known: np.ndarray | None = None) -> np.ndarray:
    """(candles x horizons) how far each side of the band (quantiles `lo`, `hi` per horizon, band
    units) is moved out for a forecast made at each candle, stepping by `rate` (one, or one per
    horizon). `z` (coins x candles x horizons) is each coin's h-step move from each candle in band
    units, NaN where unknown (a gap, or a future not yet come). The replay starts at candle 0 with
    the band as fitted; an origin's miss, judged against the band in force when it was made,
    counts from the candle its outcome closes. With `known` (k x horizons), the widening already
    in force at the first k candles (a track carried on): their origins are judged against it and
    the replay goes on from candle k."""
    coins, candles, horizons = z.shape
    steps = np.arange(1, horizons + 1)
    lo_arr, hi_arr = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    rates = np.broadcast_to(np.asarray(rate, dtype=np.float64), (horizons,))
    shift = np.zeros((candles, horizons))
    first = 0 if known is None else len(known)
    if first:
        shift[:first] = known
    excess = np.full((candles, horizons), np.nan)  # share of coins missed, minus BAND_MISS
    columns = np.arange(horizons)
    for t in range(candles):
        if t >= first:
            made = t - steps  # the origin each horizon's outcome closing at t came from
            ready = made >= 0
            gained = excess[made[ready], columns[ready]]
            shift[t] = shift[t - 1] if t else 0.0
            shift[t, ready] += rates[ready] * np.where(np.isfinite(gained), gained, 0.0)
        moves = z[:, t, :]
        seen = np.isfinite(moves)
        counts = seen.sum(axis=0)
        missed = (((moves < lo_arr - shift[t]) | (moves > hi_arr + shift[t])) & seen).sum(axis=0)
        excess[t] = np.where(counts > 0, missed / np.maximum(counts, 1) - BAND_MISS, np.nan)
    return shift


def scaled_moves(log_close: np.ndarray, band: Band, horizons: int) -> np.ndarray:
    """(coins x candles x horizons) float32: each coin's h-step move from each candle over the
    band's scale there, NaN where either is unknown."""
    coins, candles = log_close.shape
    scale = band.scale
    out = np.full((coins, candles, horizons), np.nan, dtype=np.float32)
    for first in range(0, coins, COIN_CHUNK):
        rows = log_close[first: first + COIN_CHUNK]
        at = scale.every(rows, horizons)
        for h in range(1, min(horizons, candles - 1) + 1):
            with np.errstate(divide="ignore", invalid="ignore"):
                out[first: first + COIN_CHUNK, :-h, h - 1] = (rows[:, h:] - rows[:, :-h]) / at[:, :-h, h - 1]
    return out


@dataclass(frozen=True)
class MarketTrack:
    """The market-wide widening in force at each candle time since the fit (band units, candles x
    horizons). Before the first time, and for a calibration without the adaptation, none."""

    times: pd.DatetimeIndex
    shift: np.ndarray

    def at(self, stamps: np.ndarray | pd.DatetimeIndex, horizons: int) -> np.ndarray:
        """(origins x horizons) the widening in force at each origin time (naive UTC): the one
        of the latest candle time at or before it."""
        out = np.zeros((len(stamps), horizons))
        if not len(self.times):
            return out
        where = self.times.searchsorted(naive_times(pd.DatetimeIndex(stamps)), side="right") - 1
        known = where >= 0
        out[known] = self.shift[where[known], :horizons]
        return out

    def resumes_at(self, horizons: int) -> int:
        """The first candle whose origin is judged again when the track is carried on: every
        outcome of an older origin had closed by the track's last candle."""
        return max(0, len(self.times) - horizons)

    def last(self, horizons: int) -> tuple[pd.Timestamp | None, np.ndarray]:
        """The newest candle time and the widening in force there (zeros before any)."""
        if not len(self.times):
            return None, np.zeros(horizons)
        return self.times[-1], self.shift[-1, :horizons]


def naive_times(stamps: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Times as naive UTC (the lake's are UTC-aware, origin times naive)."""
    return stamps.tz_convert(None) if stamps.tz is not None else stamps


def replay_history(band: Band) -> int:
    """How many candles before the end of validation the replay reads: the band's scale there
    looks back over them, and the first candle's move starts one before it."""
    return band.scale.history + 1


def replay_since(first: pd.Timestamp, band: Band, candle: pd.Timedelta) -> pd.Timestamp:
    """The first candle time a replay from candle time `first` reads, for a store read by time
    with candles `candle` apart (one candle more, for a gap at the start)."""
    return pd.Timestamp(first) - candle * (replay_history(band) + 1)


def aligned_log_closes(candles: dict[str, pd.DataFrame], since: pd.Timestamp,
                       history: int) -> tuple[pd.DatetimeIndex, np.ndarray, int]:
    """Every coin's log close on the union of candle times (naive UTC; NaN where a coin has none),
    from `history` candles before `since`; and the index of the first time at or after `since`."""
    since = naive_times(pd.DatetimeIndex([since]))[0]
    series = {}
    for ticker, frame in candles.items():
        stamps = naive_times(pd.DatetimeIndex(frame["timestamp"]))
        first = max(0, int(stamps.searchsorted(since)) - history)
        if first < len(frame) and stamps[-1] >= since:
            series[ticker] = pd.Series(np.log(frame["close"].to_numpy(np.float64)[first:]), index=stamps[first:])
    if not series:
        return pd.DatetimeIndex([]), np.zeros((0, 0)), 0
    table = pd.DataFrame(series).sort_index()
    times = pd.DatetimeIndex(table.index)
    return times, table.to_numpy(np.float64).T, int(times.searchsorted(since))


def adapts(band: Band) -> bool:
    return band.market_rate > 0 and bool(band.fitted_until)


def market_track(candles: dict[str, pd.DataFrame], band: Band, horizons: int) -> MarketTrack:
    """The market-wide widening (`market_widening`) at every candle time of `candles` from the
    end of the band's validation (`Band.fitted_until`) on, over all coins given: what a forecast
    made at each of those candles widens its band by."""
    if not adapts(band) or not candles:
        return MarketTrack(pd.DatetimeIndex([]), np.zeros((0, horizons)))
    times, log_close, start = aligned_log_closes(candles, pd.Timestamp(band.fitted_until), replay_history(band))
    if start >= len(times):
        return MarketTrack(pd.DatetimeIndex([]), np.zeros((0, horizons)))
    lo, hi = np.asarray(band.naive_lo)[:horizons], np.asarray(band.naive_hi)[:horizons]
    moves = scaled_moves(log_close, band, horizons)[:, start:, :]
    return MarketTrack(times[start:], market_widening(moves, lo, hi, horizon_rates(band.market_rate, horizons)))


def carried_on(track: MarketTrack, candles: dict[str, pd.DataFrame], band: Band,
               horizons: int) -> MarketTrack | None:
    """`track` carried on over `candles` (every coin, from `replay_since` its `resumes_at` candle):
    the widening at the candles it holds stays (each counts only outcomes closed by then), its
    last `horizons` origins are judged again with the outcomes closed since, and newer candles
    are replayed; what `market_track` states over the same candles, at a horizon's cost instead
    of every candle's since the fit. None where the candle times it holds changed (a coin's
    history filled in), for the whole replay to run again."""
    if not len(track.times):
        return None
    resume = track.resumes_at(horizons)
    times, log_close, start = aligned_log_closes(candles, track.times[resume], replay_history(band))
    held = track.times[resume:]
    if len(times) < start + len(held) or not times[start: start + len(held)].equals(held):
        return None
    lo, hi = np.asarray(band.naive_lo)[:horizons], np.asarray(band.naive_hi)[:horizons]
    moves = scaled_moves(log_close, band, horizons)[:, start:, :]
    shift = market_widening(moves, lo, hi, horizon_rates(band.market_rate, horizons), track.shift[resume:, :horizons])
    return MarketTrack(track.times[:resume].append(times[start:]), np.concatenate([track.shift[:resume, :horizons], shift]))


class MarketReplay:
    """The market-wide widening over one set of candles (every coin of a backtest or a test
    window, up to its end), replayed once per band: the candidates of one fit share their
    calibration's band (quantiles, scale, rate and end of validation), so they share one replay."""

    def __init__(self, candles: dict[str, pd.DataFrame]) -> None:
        self.candles = candles
        self._tracks: dict[str, MarketTrack] = {}

    def track(self, band: Band, horizons: int) -> MarketTrack:
        key = json.dumps([band.as_dict(), horizons])
        if key not in self._tracks:
            self._tracks[key] = market_track(self.candles, band, horizons)
        return self._tracks[key]

    def shift_at(self, band: Band, stamps: np.ndarray, horizons: int) -> np.ndarray:
        """(origins x horizons) the widening of `band` in force at each origin time (an origin's
        widening counts only outcomes closed by its time)."""
        return self.track(band, horizons).at(stamps, horizons)


Reader = Callable[[pd.Timestamp], dict[str, pd.DataFrame]]


class MarketAdaptation:
    """A serving replica's market-wide widening of one band: `update` replays it from the end of
    validation the first time, then carries the last track on over the candles that came since;
    `shift_now` is the widening in force at the newest candle, or None (the validated band)
    where the band does not adapt or its candles are stale (the newest older than the horizon:
    a widening that old no longer says how the market is moving)."""

    def __init__(self, band: Band, candle: pd.Timedelta, horizons: int = HORIZON) -> None:
        self.band, self.candle, self.horizons = band, candle, horizons
        self.track = MarketTrack(pd.DatetimeIndex([]), np.zeros((0, horizons)))
        self.coins = 0
        self._now: np.ndarray | None = None

    def update(self, read: Reader, now: pd.Timestamp) -> str:
        """Replay over the candles `read(since)` returns (every coin, from candle time `since`
        on); returns what the band now does, for the log."""
        if not adapts(self.band):
            self._now = None
            return "no market-wide adaptation"
        track = None
        if len(self.track.times):
            first = self.track.times[self.track.resumes_at(self.horizons)]
            candles = read(replay_since(first, self.band, self.candle))
            track = carried_on(self.track, candles, self.band, self.horizons)
        if track is None:
            candles = read(replay_since(pd.Timestamp(self.band.fitted_until), self.band, self.candle))
            track = market_track(candles, self.band, self.horizons)
        self.track, self.coins = track, len(candles)
        newest, shift = track.last(self.horizons)
        if newest is None or newest < naive_times(pd.DatetimeIndex([now]))[0] - self.candle * self.horizons:
            self._now = None
            return f"the candles end {newest}; the band is the validated one until jobs.update_data brings newer ones"
        self._now = shift
        return (f"band widened by {shift[0]:+.3f} (h1) / {shift[-1]:+.3f} (h{self.horizons}) band units, "
                f"{self.coins} coins to {newest:%Y-%m-%d %H:%M}")

    def shift_now(self) -> np.ndarray | None:
        return self._now
