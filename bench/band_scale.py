"""The band's volatility model on real test windows: the interval score of naive's 80 % band (what
`auto` deployed on 11 of bench.honesty's 13 windows, and the band of every flat step) with each
scale, as a ratio to today's band (the 20-candle rolling scale), with a block-bootstrap interval.

    .venv/bin/python -m bench.band_scale [--timeframes 1d,4h,1h]

Per timeframe and test window (bench.honesty's windows and split: candles before the window only),
the HAR model is fitted on the train part, `training.band.choice.choose_band_scale` picks a scale on
validation, and the band quantiles (with the regime margin) come from validation's moves in each
scale's units. Every candle of the window whose next 30 are known is an origin (thinned to at most
3,000). Variants, each served as `fit_calibration` and the forecaster serve it (the regime margin
of `band_quantiles`, widened to never narrow: `Band.served`) unless named:
`today` (the baseline: the rolling scale, adapted at 0.02 with the full regime margin, not widened:
`bench.yardstick`), `rolling` (the rolling scale), `har` (HAR on 5, 20 and 100 candles),
`har_adapted` (HAR, adapted and with the margin as `today`: measured only), `har_long` (HAR adding
250 candles), `chosen_fixed` (the scale `choose_band_scale` picked on validation, without the
market-wide adaptation) and `chosen` (the same with it, replayed from the window's start over
every coin at the timeframe's rate, `training.band.market`: as fitting deploys it). Every variant
but `today`, `har_adapted` and `chosen_fixed` has the market-wide adaptation. Printed per window and
pooled per timeframe (blocks of each window kept apart): interval score ratio to `today` at h = 1,
5, 10, 30 with its 95 % interval, and coverage at h = 1 and 30 (the h = 30 interval from blocks of
30 candles: `Blocks`). Beside them, `band_every_candle` (`training.band.every_candle`, as in the
backtest JSON): the band fitting deploys where no model proves an edge (naive's, with the chosen
scale, the regime margin and the market-wide adaptation) on every candle of the window (thinned
to 20,000), against the 20-candle band calibrated on the same validation, per window and pooled:
interval score ratio with its interval, coverage, coverage per volatility tercile and the h = 1
misses' independence test. `--source csv:DIR` and `--windows START:END,...` judge another export
or other windows. Each lake holds before its window what the weekly job's held then (the
backtest's fill). Results also in bench/results/band_scale.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.honesty import FRACTIONS, HORIZONS, Blocks, Plan, fill_lake, plan_of
from bench.yardstick import TODAYS_MARGIN, TODAYS_RATE, band_of
from features.profiles import profile_for
from market_data.timeframes import HORIZON
from stats.bootstrap import ratio_interval, share_interval
from training.band.band import Band
from training.band.choice import choose_band_scale
from training.band.every_candle import Judged, band_every_candle
from training.band.market import MarketReplay, market_rate, market_track
from training.band.quantiles import REGIME_MARGIN, band_quantiles, naive_move_halves
from training.band.scale import HAR_WINDOW_SETS, ROLLING, BandScale, fit_har
from training.evaluation import blocks_of, in_period
from training.scores import interval_score
from training.stages import load_candles, split_for

OUT = Path(__file__).resolve().parent / "results" / "band_scale.json"
MAX_ORIGINS = 3000


def test_origins(candles: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp,
                 window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(origins x window) closes up to each origin, (origins x HORIZON) the closes after it, and
    each origin's time (naive UTC): every candle of the window whose next HORIZON are known,
    thinned to at most MAX_ORIGINS."""
    picks = []
    for frame in candles.values():
        rows = np.flatnonzero(in_period(frame, start, end))
        picks += [(frame, i) for i in rows[(rows >= window - 1) & (rows + HORIZON < len(frame))]]
    picks = picks[:: max(1, len(picks) // MAX_ORIGINS)]
    close = np.stack([f["close"].to_numpy(np.float64)[i - window + 1: i + 1] for f, i in picks])
    future = np.stack([f["close"].to_numpy(np.float64)[i + 1: i + HORIZON + 1] for f, i in picks])
    times = np.array([f["timestamp"].iloc[i].tz_localize(None).to_datetime64() for f, i in picks])
    return close, future, times


@dataclass(frozen=True)
class Variant:
    """A band as served: which scale, the adaptation rate (each coin's own misses), the regime
    margin, whether widened, and whether the market-wide adaptation (at the timeframe's rate) moves it."""
    scale: str
    rate: float = 0.0
    margin: float = REGIME_MARGIN
    widen: bool = True
    market: bool = True


VARIANTS = {"today": Variant("rolling", TODAYS_RATE, TODAYS_MARGIN, widen=False, market=False),
            "rolling": Variant("rolling"), "har": Variant("har"),
            "har_adapted": Variant("har", TODAYS_RATE, TODAYS_MARGIN, market=False), "har_long": Variant("har_long"),
            "chosen_fixed": Variant("chosen", market=False), "chosen": Variant("chosen")}


def market_of(candles: dict[str, pd.DataFrame], scale: BandScale, quantiles: tuple[np.ndarray, np.ndarray],
              rate: float, since: pd.Timestamp, times: np.ndarray) -> np.ndarray | None:
    """(origins x horizons) the market-wide widening in force at each origin time, replayed from
    `since` (the end of validation) over every coin, as a fitted model with these quantiles and
    scale serves it (`training.band.market`); None at rate 0."""
    if rate <= 0:
        return None
    lo, hi = (tuple(float(v) for v in q) for q in quantiles)
    band = Band(scale, lo, hi, lo, hi, rate, since.isoformat())
    return market_track(candles, band, HORIZON).at(times, HORIZON)


@dataclass
class Scored:
    """One variant's per-origin interval scores and coverage (origins x horizons) on one window."""
    score: np.ndarray
    covered: np.ndarray


def run_window(timeframe: str, plan: Plan, start: pd.Timestamp,
               end: pd.Timestamp) -> tuple[dict[str, Any], dict[str, Scored], Blocks, Judged]:
    profile = profile_for(timeframe)
    with tempfile.TemporaryDirectory() as tmp:
        tickers = fill_lake(Path(tmp), plan, timeframe, end.to_pydatetime(), None, train_end=start.to_pydatetime())
        candles = load_candles(tmp, tickers, timeframe, end)
    before = {t: f[f["timestamp"] < start] for t, f in candles.items()}
    before = {t: f for t, f in before.items() if len(f) > profile.warmup}
    split = split_for(before, timeframe, FRACTIONS)
    rolling = BandScale(ROLLING, profile.volatility_window)
    scales = {"rolling": rolling,
              "har": fit_har(before, split.train_end, HORIZON, rolling.window, HAR_WINDOW_SETS[0]),
              "har_long": fit_har(before, split.train_end, HORIZON, rolling.window, HAR_WINDOW_SETS[1])}
    choice = choose_band_scale(before, split, HORIZON, rolling.window)
    scales["chosen"] = choice.scale
    close, future, times = test_origins(candles, start, end, profile.serving_window)
    actual = np.log(future) - np.log(close[:, -1:])
    blocks = Blocks(blocks_of(pd.DatetimeIndex(times), timeframe),
                    blocks_of(pd.DatetimeIndex(times), timeframe, candles=HORIZON))
    scored: dict[str, Scored] = {}
    for name, variant in VARIANTS.items():
        scale = scales[variant.scale]
        halves = naive_move_halves(before, split.valid_start, split.valid_end, scale, HORIZON)
        lo, hi = band_quantiles(np.concatenate(halves), halves, margin=variant.margin)
        market = market_of(candles, scale, (lo, hi), market_rate(timeframe) if variant.market else 0.0, start, times)
        lower, upper = band_of(scale, close, (lo, hi), variant.widen, variant.rate, market)
        scored[name] = Scored(interval_score(lower, upper, actual), (lower <= actual) & (actual <= upper))
    deployed = deployed_band(before, split, choice.scale, timeframe)
    judged = band_every_candle(deployed, candles, (start, end), (split.valid_start, split.valid_end), timeframe,
                               MarketReplay(candles))
    result = {"timeframe": timeframe, "window": f"{start:%Y-%m-%d} to {end:%Y-%m-%d}", "origins": len(close),
              "chosen": choice.scale.name, "validation_scores": choice.scores, **summary(scored, blocks),
              "band_every_candle": judged.summary()}
    return result, scored, blocks, judged


def deployed_band(before: dict[str, pd.DataFrame], split: Any, scale: BandScale, timeframe: str) -> Band:
    """Naive's band as fitting deploys it where no model proves an edge: validation's naive moves
    in the chosen scale's units, the regime margin, the market-wide adaptation from the end of
    validation (`Band.fit`, `Band.adapting`)."""
    halves = naive_move_halves(before, split.valid_start, split.valid_end, scale, HORIZON)
    band = Band.fit(scale, halves, [np.full_like(h, np.nan) for h in halves])
    return band.adapting(market_rate(timeframe), split.valid_end.isoformat())


def every_candle_table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The deployed band against the 20-candle band on every candle: one line per window or pool."""
    lines = [f"{'':<26} " + " ".join(f"{'IS/rolling20 h' + str(h):>24}" for h in HORIZONS)
             + f" {'cover h1':>7} {'h30':>6} {'h1 by volatility':>18} {'indep. p':>9}"]
    for label, every in rows:
        cells = " ".join(f"{every[str(h)]['ratio']:>7.3f} [{every[str(h)]['ratio_95'][0]:.3f},"
                         f"{every[str(h)]['ratio_95'][1]:.3f}]" for h in HORIZONS)
        terciles = "/".join(f"{c:.3f}" for c in every["1"]["coverage_80_by_volatility"])
        lines.append(f"{label:<26} {cells} {every['1']['coverage_80']:>7.3f} {every['30']['coverage_80']:>6.3f} "
                     f"{terciles:>18} {every['1']['independence']['p_value']:>9.2g}")
    return lines


def distribution_table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The deployed distribution against the 20-candle one on every candle: CRPS ratio with its
    interval, the PIT histogram's lowest and highest bin, and the Brier skill of the close-above-
    origin event and of touching the band's upper and lower end, per horizon."""
    lines = [f"{'':<26} " + " ".join(f"{'CRPS/rolling20 h' + str(h):>24}" for h in HORIZONS)
             + " " + " ".join(f"{'PIT min-max h' + str(h):>16}" for h in HORIZONS)
             + " " + " ".join(f"{'above skill h' + str(h):>14}" for h in HORIZONS)
             + " " + " ".join(f"{'touch up/low skill h' + str(h):>22}" for h in HORIZONS)]
    for label, every in rows:
        crps = " ".join(f"{every[str(h)]['crps_ratio']:>7.3f} [{every[str(h)]['crps_ratio_95'][0]:.3f},"
                        f"{every[str(h)]['crps_ratio_95'][1]:.3f}]" for h in HORIZONS)
        pits = " ".join(f"{min(every[str(h)]['pit_histogram']):>8.3f}-{max(every[str(h)]['pit_histogram']):.3f}"
                        for h in HORIZONS)
        events = {h: every[str(h)]["events"] for h in HORIZONS}
        skill = " ".join(f"{events[h]['above_origin']['brier_skill']:>14.4f}" for h in HORIZONS)
        touch = " ".join(f"{events[h]['touch_band_upper']['brier_skill']:>11.3f}/{events[h]['touch_band_lower']['brier_skill']:.3f}"
                         for h in HORIZONS)
        lines.append(f"{label:<26} {crps} {pits} {skill} {touch}")
    return lines


def summary(scored: dict[str, Scored], blocks: Blocks) -> dict[str, Any]:
    """Each variant's interval score ratio to `today` per horizon with its interval, and coverage
    (at h = 30 with the long blocks)."""
    base = scored["today"].score
    out: dict[str, Any] = {"interval_score_ratio": {}, "coverage_80": {}, "interval_score": {}}
    for name, s in scored.items():
        out["interval_score_ratio"][name] = {str(h): ratio_interval(s.score[:, h - 1], base[:, h - 1], blocks.short)
                                             for h in HORIZONS}
        out["interval_score"][name] = {str(h): float(s.score[:, h - 1].mean()) for h in HORIZONS}
        out["coverage_80"][name] = {"1": share_interval(s.covered[:, 0], blocks.short),
                                    str(HORIZON): share_interval(s.covered[:, HORIZON - 1], blocks.long)}
    return out


def table(result: dict[str, Any]) -> list[str]:
    lines = [f"{'variant':<11} " + " ".join(f"{'IS/today h' + str(h):>22}" for h in HORIZONS)
             + f" {'cover h1':>22} {'cover h30':>22}"]
    for name in VARIANTS:
        ratio, cover = result["interval_score_ratio"][name], result["coverage_80"][name]
        cells = " ".join(f"{r:>6.3f} [{lo:.3f},{hi:.3f}]" for r, lo, hi in (ratio[str(h)] for h in HORIZONS))
        covers = " ".join(f"{c:>6.3f} [{lo:.3f},{hi:.3f}]" for c, lo, hi in (cover[str(h)] for h in (1, HORIZON)))
        lines.append(f"{name:<11} {cells} {covers}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeframes", default="1d,4h,1h")
    parser.add_argument("--windows", help="test windows START:END,... (ISO dates; default: the shared data's)")
    parser.add_argument("--source", help="csv:DIR: judge on this export instead of ../shared/data")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results, pools = [], []
    for timeframe in args.timeframes.split(","):
        plan = plan_of(timeframe, args.source, args.windows)
        kept: dict[str, list[Scored]] = {name: [] for name in VARIANTS}
        all_blocks: list[Blocks] = []
        judged: list[Judged] = []
        for i, (start, end) in enumerate(plan.windows):
            started = time.perf_counter()
            result, scored, blocks, every = run_window(timeframe, plan, pd.Timestamp(start), pd.Timestamp(end))
            judged.append(every)
            result["seconds"] = round(time.perf_counter() - started, 1)
            results.append(result)
            print(f"\n== {timeframe} {result['window']}: {result['origins']} origins, chosen scale "
                  f"{result['chosen']} ({result['seconds']} s)", flush=True)
            print("\n".join(table(result)), flush=True)
            print("\n".join(every_candle_table([("deployed, every candle", result["band_every_candle"])])), flush=True)
            print("\n".join(distribution_table([("deployed, every candle", result["band_every_candle"])])), flush=True)
            for name in VARIANTS:
                kept[name].append(scored[name])
            all_blocks.append(blocks.moved(i * 1_000_000))
        pooled = {name: Scored(np.concatenate([s.score for s in parts]), np.concatenate([s.covered for s in parts]))
                  for name, parts in kept.items()}
        joined = Blocks.joined(all_blocks)
        pool = {"timeframe": timeframe, "windows": len(all_blocks), **summary(pooled, joined),
                "band_every_candle": Judged.joined(judged).summary()}
        pools.append(pool)
        print(f"\n== {timeframe}, all windows pooled")
        print("\n".join(table(pool)), flush=True)
        print("\n".join(every_candle_table([("deployed, every candle", pool["band_every_candle"])])), flush=True)
        print("\n".join(distribution_table([("deployed, every candle", pool["band_every_candle"])])), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"results": results, "pooled": pools}, indent=1, default=str))
    print(f"\nresults in {args.out}")


if __name__ == "__main__":
    main()
