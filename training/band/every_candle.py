"""The band judged on every candle, not on a sample of forecast origins.

A 600-origin sample cannot tell one band from another (origin grids of the same spacing move the
20-candle band's interval score by -15 % to +31 %). Naive's band (what the deployed model serves
for every flat step) needs no model prediction, so it is scored on every test candle with
HORIZON known candles after it, paired with a simple band on the same origins: the 20-candle
band, the 10 % / 90 % quantiles of validation's moves in units of the 20-candle standard
deviation times sqrt(h), with no regime margin, no adaptation, no widening. Coverage is also
given per tercile of the origin's own 20-candle volatility (a band right on average but too
narrow in storms and too wide in calm is not calibrated), and the h = 1 misses are tested for
clustering (`stats.coverage`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from market_data.timeframes import HORIZON, spec
from risk.paths import simulate_many, touch_chance
from stats.bootstrap import ratio_interval, runs_of_time, share_interval
from stats.coverage import Independence, chi2_sf, independence_test
from stats.reliability import reliability_table
from training.band.band import Band
from training.band.market import MarketReplay
from training.band.quantiles import BAND_ROWS, LEVELS, naive_moves
from training.band.scale import ROLLING, BandScale
from training.scores import crps, interval_score, pit, pit_histogram

JUDGED_HORIZONS = (1, 5, 10, 30)
MAX_ORIGINS = 20_000  # per horizon, thinned evenly
EVENT_ORIGINS = 1_000  # of them, where the touch events are judged, EVENT_BATCH at a time
EVENT_PATHS = 256  # each, on a grid of EVENT_SUBSTEPS a candle (bridges judge between them)
EVENT_SUBSTEPS = 2
EVENT_BATCH = 250
BATCH = 20_000  # origins whose windows are held at once
ROLLING20 = BandScale(ROLLING, 20)


@dataclass(frozen=True)
class CandleOrigins:
    """Every candle of a test period whose next HORIZON are known and that has `window` candles up
    to it: each one's coin (`series`), its candle index in that coin (`position`) and time."""

    closes: list[np.ndarray]  # per coin, its closes
    highs: list[np.ndarray]  # per coin, its highs and lows (its closes where a source has none)
    lows: list[np.ndarray]
    series: np.ndarray
    position: np.ndarray
    times: np.ndarray  # datetime64[ns], naive UTC
    window: int

    def __len__(self) -> int:
        return len(self.series)

    def windows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows x window) the closes up to each origin of `rows`, and (rows x HORIZON) the log
        moves to the next HORIZON closes."""
        ser, pos = self.series[rows], self.position[rows]
        close = np.empty((len(rows), self.window))
        moves = np.empty((len(rows), HORIZON))
        for s in np.unique(ser):
            mine = ser == s
            values, at = self.closes[s], pos[mine]
            close[mine] = values[at[:, None] + np.arange(1 - self.window, 1)[None, :]]
            moves[mine] = np.log(values[at[:, None] + np.arange(1, HORIZON + 1)[None, :]]) - np.log(values[at])[:, None]
        return close, moves

    def extremes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows x HORIZON) the highest high and the lowest low of the next 1..HORIZON candles, as
        log returns from each origin's close: what judges whether a level was touched."""
        ser, pos = self.series[rows], self.position[rows]
        high, low = np.empty((len(rows), HORIZON)), np.empty((len(rows), HORIZON))
        ahead = np.arange(1, HORIZON + 1)[None, :]
        for s in np.unique(ser):
            mine = ser == s
            at, base = pos[mine], np.log(self.closes[s][pos[mine]])[:, None]
            high[mine] = np.maximum.accumulate(np.log(self.highs[s][at[:, None] + ahead]) - base, axis=1)
            low[mine] = np.minimum.accumulate(np.log(self.lows[s][at[:, None] + ahead]) - base, axis=1)
        return high, low


def candle_origins(candles: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp,
                   window: int) -> CandleOrigins:
    closes: list[np.ndarray] = []
    highs: list[np.ndarray] = []
    lows: list[np.ndarray] = []
    series: list[np.ndarray] = []
    position: list[np.ndarray] = []
    times: list[np.ndarray] = []
    for frame in candles.values():
        stamps = frame["timestamp"]
        rows = np.flatnonzero(((stamps >= start) & (stamps < end)).to_numpy())
        rows = rows[(rows >= window - 1) & (rows + HORIZON < len(frame))]
        if not len(rows):
            continue
        series.append(np.full(len(rows), len(closes)))
        closes.append(frame["close"].to_numpy(np.float64))
        highs.append(frame["high"].to_numpy(np.float64) if "high" in frame else closes[-1])
        lows.append(frame["low"].to_numpy(np.float64) if "low" in frame else closes[-1])
        position.append(rows)
        times.append(pd.DatetimeIndex(stamps.iloc[rows]).tz_convert(None).to_numpy())
    if not closes:
        raise ValueError(f"no test candle from {start} to {end} has {window} candles before it and {HORIZON} after")
    return CandleOrigins(closes, highs, lows, np.concatenate(series), np.concatenate(position), np.concatenate(times),
                         window)


def rolling20_levels(candles: dict[str, pd.DataFrame], valid_start: pd.Timestamp,
                     valid_end: pd.Timestamp) -> np.ndarray:
    """The simple distribution: (LEVELS x horizons) quantiles of every validation candle's naive
    moves in 20-candle units (its 10 % and 90 % rows are the 20-candle band)."""
    moves, at = naive_moves(candles, valid_start, valid_end, ROLLING20, HORIZON)
    if not len(moves):
        raise ValueError(f"no validation candle from {valid_start} to {valid_end} with {HORIZON} known after it")
    return np.quantile(moves / at, LEVELS, axis=0)


@dataclass(frozen=True)
class Spread:
    """The whole distribution judged on the same origins and horizons as the band: CRPS of the
    served and of the 20-candle distribution (log-return units), the served one's PIT, and the
    chance each states that the close ends above the origin's, with whether it did (1 or 0)."""

    crps: np.ndarray
    crps_simple: np.ndarray
    pit: np.ndarray
    p_above: np.ndarray
    p_above_simple: np.ndarray
    above: np.ndarray
    # touching the served band's upper (lower) end of horizon h within h candles, by their highs
    # (lows): the chance each distribution's paths give it, and whether it happened; NaN off the
    # EVENT_ORIGINS judged (paths cost more than a quantile)
    p_touch_upper: np.ndarray
    p_touch_upper_simple: np.ndarray
    touched_upper: np.ndarray
    p_touch_lower: np.ndarray
    p_touch_lower_simple: np.ndarray
    touched_lower: np.ndarray

    @staticmethod
    def joined(parts: list[Spread]) -> Spread:
        return Spread(*(np.concatenate([getattr(p, name) for p in parts]) for name in SPREAD_FIELDS))

    def summary(self, j: int, blocks: np.ndarray) -> dict[str, Any]:
        """Horizon column `j`'s scores: the CRPS ratio with its block-bootstrap interval, the PIT
        histogram, and the close-above-origin event's Brier scores, skill and reliability."""
        ratio, low, high = ratio_interval(self.crps[:, j], self.crps_simple[:, j], blocks)
        return {"crps": float(self.crps[:, j].mean()), "crps_rolling20": float(self.crps_simple[:, j].mean()),
                "crps_ratio": ratio, "crps_ratio_95": [low, high],
                "pit_histogram": [float(v) for v in pit_histogram(self.pit[:, j])],
                "events": {"above_origin": event_scores(self.p_above[:, j], self.p_above_simple[:, j], self.above[:, j],
                                                        blocks),
                           "touch_band_upper": event_scores(self.p_touch_upper[:, j], self.p_touch_upper_simple[:, j],
                                                            self.touched_upper[:, j], blocks),
                           "touch_band_lower": event_scores(self.p_touch_lower[:, j], self.p_touch_lower_simple[:, j],
                                                            self.touched_lower[:, j], blocks)}}


def event_scores(stated: np.ndarray, simple: np.ndarray, hit: np.ndarray, blocks: np.ndarray) -> dict[str, Any]:
    """An event's Brier score under the served and the 20-candle distribution on the origins
    judged (finite rows), the skill (1 - the ratio) with its block-bootstrap interval (the
    ratio's), and the served probabilities' reliability."""
    known = np.isfinite(stated) & np.isfinite(simple) & np.isfinite(hit)
    if not known.any():
        return {"origins": 0, "brier": None, "brier_rolling20": None, "brier_skill": None, "brier_skill_95": None,
                "reliability": []}
    y = hit[known].astype(np.float64)
    served, rolling = (stated[known] - y) ** 2, (simple[known] - y) ** 2
    ratio, low, high = ratio_interval(served, rolling, blocks[known])
    return {"origins": int(known.sum()), "brier": float(served.mean()), "brier_rolling20": float(rolling.mean()),
            "brier_skill": 1.0 - ratio, "brier_skill_95": [1.0 - high, 1.0 - low],
            "reliability": [vars(b) for b in reliability_table(stated[known], y, blocks[known])]}


SPREAD_FIELDS = tuple(f.name for f in fields(Spread))


@dataclass(frozen=True)
class Judged:
    """Per origin (thinned to MAX_ORIGINS), per horizon of JUDGED_HORIZONS: the served band's and
    the 20-candle band's interval scores and whether the served band covered; each origin's
    20-candle volatility and bootstrap block; and the h = 1 misses' independence test (on every
    candle, unthinned). Windows judged apart are pooled with `joined`."""

    served: np.ndarray
    simple: np.ndarray
    covered: np.ndarray
    volatility: np.ndarray
    blocks: np.ndarray
    independence: list[Independence]
    spread: Spread

    @staticmethod
    def joined(parts: list[Judged]) -> Judged:
        """Windows pooled: their blocks kept apart."""
        offsets = np.cumsum([0] + [int(p.blocks.max()) + 1 for p in parts[:-1]])

        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return Judged(joined("served"), joined("simple"), joined("covered"), joined("volatility"),
                      np.concatenate([p.blocks + o for p, o in zip(parts, offsets, strict=True)]),
                      [i for p in parts for i in p.independence], Spread.joined([p.spread for p in parts]))

    def summary(self) -> dict[str, Any]:
        """The backtest JSON's `band_every_candle`: per horizon the origins, both interval scores,
        their ratio with its block-bootstrap 95 % interval, coverage with its interval and per
        tercile of the 20-candle volatility (terciles among all origins); at h = 1 the misses'
        independence (pooled over windows: the sums of their likelihood ratios and transitions)."""
        tercile = np.digitize(self.volatility, np.quantile(self.volatility, [1 / 3, 2 / 3]))
        out: dict[str, Any] = {}
        for j, h in enumerate(JUDGED_HORIZONS):
            ratio, low, high = ratio_interval(self.served[:, j], self.simple[:, j], self.blocks)
            hits = self.covered[:, j]
            out[str(h)] = {"origins": int(len(hits)), "interval_score": float(self.served[:, j].mean()),
                           "rolling20_interval_score": float(self.simple[:, j].mean()), "ratio": ratio,
                           "ratio_95": [low, high], "coverage_80": float(hits.mean()),
                           "coverage_80_95": list(share_interval(hits, self.blocks)[1:]),
                           "coverage_80_by_volatility": [float(hits[tercile == t].mean()) for t in range(3)],
                           **self.spread.summary(j, self.blocks)}
        out["1"]["independence"] = pooled_independence(self.independence)
        return out


def pooled_independence(tests: list[Independence]) -> dict[str, Any]:
    """One window's test as it is; several windows' as one: independent windows' likelihood ratios
    add, as do their degrees of freedom."""
    lr, transitions = sum(t.lr for t in tests), sum(t.transitions for t in tests)
    after_hit = sum(t.p_miss_after_hit * t.transitions for t in tests) / max(1, transitions)
    after_miss = sum(t.p_miss_after_miss * t.transitions for t in tests) / max(1, transitions)
    return {"transitions": transitions, "windows": len(tests), "lr": lr, "p_value": chi2_sf(lr, len(tests)),
            "p_miss_after_hit": tests[0].p_miss_after_hit if len(tests) == 1 else after_hit,
            "p_miss_after_miss": tests[0].p_miss_after_miss if len(tests) == 1 else after_miss}


Period = tuple[pd.Timestamp, pd.Timestamp]  # [start, end)


def band_every_candle(band: Band, candles: dict[str, pd.DataFrame], test: Period, validation: Period, timeframe: str,
                      market: MarketReplay | None = None) -> Judged:
    """`band`'s naive band as served (its scale, quantiles, the market-wide widening in force at
    each origin, the widening with the step) against the 20-candle band calibrated on
    `validation`, on every candle of the `test` period of `candles` (each coin's candles up to at least
    HORIZON after `end`), thinned evenly to MAX_ORIGINS; blocks of HORIZON candles, every coin
    of a block together."""
    start, end = test
    window = max(band.scale.history, ROLLING20.window) + 2
    origins = candle_origins(candles, start, end, window)
    simple_table = rolling20_levels(candles, *validation)
    n, cols = len(origins), [h - 1 for h in JUDGED_HORIZONS]
    served_is, simple_is, covered = (np.empty((n, len(cols))) for _ in range(3))
    scores = {name: np.full((n, len(cols)), np.nan) for name in SPREAD_FIELDS}  # touches: NaN off their origins
    vol = np.empty(n)
    zeros = np.zeros((1, HORIZON))
    step = max(1, -(-n // MAX_ORIGINS))
    kept_count = -(-n // step)
    event_step = step * max(1, -(-kept_count // EVENT_ORIGINS))  # a subset of the origins kept
    for first in range(0, n, BATCH):
        rows = np.arange(first, min(n, first + BATCH))
        close, moves = origins.windows(rows)
        shift = None if market is None else market.shift_at(band, origins.times[rows], HORIZON)
        served = band.served(np.repeat(zeros, len(rows), axis=0), close, shift)
        simple = ROLLING20.at(np.log(close), HORIZON)
        lower, upper = served.naive_lower[:, cols], served.naive_upper[:, cols]
        simple_q = simple[:, cols, None] * simple_table[:, cols].T[None]
        actual = moves[:, cols]
        served_is[rows] = interval_score(lower, upper, actual)
        simple_is[rows] = interval_score(simple_q[..., BAND_ROWS[0]], simple_q[..., BAND_ROWS[1]], actual)
        covered[rows] = (lower <= actual) & (actual <= upper)
        vol[rows] = simple[:, 0]
        judged_spread(scores, rows, served.quantiles[:, cols], simple_q, actual)
        events = rows % event_step == 0
        if events.any():
            judged_touches(scores, rows[events], (served.quantiles[events], simple[events, :, None] * simple_table.T[None]),
                           (served.naive_lower[events][:, cols], served.naive_upper[events][:, cols]),
                           origins.extremes(rows[events]))
    independence = independence_test(~covered[:, 0].astype(bool), origins.series, origins.position)
    kept = np.arange(0, n, step)
    blocks = runs_of_time(pd.DatetimeIndex(origins.times[kept]), pd.Timedelta(hours=spec(timeframe).approx_hours),
                          HORIZON, start)
    spread = Spread(*(scores[name][kept] for name in SPREAD_FIELDS))
    return Judged(served_is[kept], simple_is[kept], covered[kept].astype(bool), vol[kept], blocks, [independence],
                  spread)


def judged_spread(scores: dict[str, np.ndarray], rows: np.ndarray, served: np.ndarray, simple: np.ndarray,
                  actual: np.ndarray) -> None:
    """Fill `rows` of `scores` from the served and the simple distribution (rows x horizons x
    LEVELS, log returns) and the outcomes (rows x horizons)."""
    scores["crps"][rows] = crps(served, actual)
    scores["crps_simple"][rows] = crps(simple, actual)
    scores["pit"][rows] = pit(served, actual)
    zero = np.zeros(actual.shape)
    scores["p_above"][rows] = 1.0 - pit(served, zero)
    scores["p_above_simple"][rows] = 1.0 - pit(simple, zero)
    scores["above"][rows] = actual > 0


def judged_touches(scores: dict[str, np.ndarray], rows: np.ndarray, tables: tuple[np.ndarray, np.ndarray],
                   band: tuple[np.ndarray, np.ndarray], extremes: tuple[np.ndarray, np.ndarray]) -> None:
    """Fill `rows` of the touch events: `tables` the served and the simple distribution (rows x
    HORIZON x LEVELS, log returns), `band` the served band's ends at the judged horizons, and
    `extremes` the highest high and lowest low ahead (rows x HORIZON)."""
    high, low = extremes
    for first in range(0, len(rows), EVENT_BATCH):
        part = slice(first, first + EVENT_BATCH)
        for name, table in zip(("", "_simple"), tables, strict=True):
            paths = simulate_many(table[part], EVENT_PATHS, EVENT_SUBSTEPS)
            for j, h in enumerate(JUDGED_HORIZONS):
                moments = paths.upto(h)
                scores["p_touch_upper" + name][rows[part], j] = touch_chance(paths, band[1][part, j], moments)
                scores["p_touch_lower" + name][rows[part], j] = touch_chance(paths, band[0][part, j], moments)
    for j, h in enumerate(JUDGED_HORIZONS):
        scores["touched_upper"][rows, j] = high[:, h - 1] >= band[1][:, j]
        scores["touched_lower"][rows, j] = low[:, h - 1] <= band[0][:, j]
