"""Honest forecasts on real candles: every candidate and the one `auto` deploys, against naive, on
test windows the models never saw.

    .venv/bin/python -m bench.honesty [--timeframes 1h,4h,1d] [--top N] [--n-estimators N] [--epochs N]

Per timeframe and test window (daily: each half-year from 2022H2 to 2024H2 on
../shared/data/binance_daily; hourly and 4-hourly: each quarter from 2022-07 to 2023-06 on
../shared/data/binance_hourly), the lake is filled as of the window's end, every candidate is
fitted and calibrated on candles before the window (`training.fitting.fit_candidates`, the weekly
job's path, without Ray), `auto` picks on validation, and all of them forecast the same test
origins. Printed per model: the MAE ratio to naive at h = 1, 5, 10, 30 with a 95 % block bootstrap
interval (blocks of 10 candles of origin time, all symbols together: neighbouring origins share
most of their future and coins move together), the 80 % band's coverage at h = 1 and 30, and for
the chosen model the reliability table of its confidence (bins of the steps that call a direction,
each hit rate with its block interval), and the chosen model's coverage again with every test
candle an origin (the sample's 600 leave a wide spread at h = 1); after a timeframe's windows,
every model's coverage and reliability over all of them together. Beside each candidate, its refit
(`xgboost_refit`, `ensemble_refit`, ...): the same model fitted again on train + validation with
its first calibration, as the weekly job deploys it where the timeframe deploys refits (the A/B of
refitting). Everything also goes to bench/results/honesty.json, written after every window with
each window's outcomes beside it (`honesty.outcomes/`): `--resume` goes on with a stopped run and
still pools every window; `--render` prints its tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.yardstick import todays_band
from jobs.cli import model_params
from market_data.csv_source import CsvSource
from market_data.timeframes import HORIZON
from market_data.update import update_pair
from stats.bootstrap import ratio_interval, share_interval
from storage.lake import Lake
from training.backtest import refit_name, training_history
from training.band.every_candle import band_every_candle
from training.band.market import MarketReplay
from training.evaluation import CalledSteps, Origins, chance_within, in_period, sample_stride, select_origins, time_blocks
from training.fitting import fit_candidates
from training.forecaster import ForecastArrays, ForecastModel
from training.models.xgb_booster import DEFAULT_PARAMS
from training.scores import interval_score
from training.selection import choose
from training.spec import FitSpec
from training.stages import StageTimer, load_candles

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "results" / "honesty.json"
FRACTIONS = (0.75, 0.25, 0.0)  # as the backtest: train | valid before the window, the window is the test
HORIZONS = (1, 5, 10, 30)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _half_years() -> list[tuple[datetime, datetime]]:
    starts = ["2022-07-01", "2023-01-01", "2023-07-01", "2024-01-01", "2024-07-01"]
    ends = [*starts[1:], "2025-01-01"]
    return [(_utc(a), _utc(b)) for a, b in zip(starts, ends)]


def _quarters() -> list[tuple[datetime, datetime]]:
    starts = ["2022-07-01", "2022-10-01", "2023-01-01", "2023-04-01"]
    ends = [*starts[1:], "2023-07-01"]
    return [(_utc(a), _utc(b)) for a, b in zip(starts, ends)]


@dataclass(frozen=True)
class Plan:
    data: Path
    windows: list[tuple[datetime, datetime]]
    max_origins: int


PLANS = {
    "1d": Plan(SHARED / "binance_daily", _half_years(), 600),
    "4h": Plan(SHARED / "binance_hourly", _quarters(), 600),
    "1h": Plan(SHARED / "binance_hourly", _quarters(), 600),
}


def fill_lake(root: Path, plan: Plan, timeframe: str, as_of: datetime, top: int | None,
              train_end: datetime | None = None) -> list[str]:
    """A lake of the plan's coins up to `as_of` (a test window's end), holding before `train_end`
    (its start) what the weekly job's lake held then, as the backtest's does."""
    source = CsvSource(plan.data)
    tickers = sorted(t.ticker for t in source.list_tickers())[: top or None]
    lake = Lake(root)
    for ticker in tickers:
        update_pair(lake, source, ticker, timeframe, as_of, history_as_of=train_end)
    return tickers


def plan_of(timeframe: str, source: str | None, windows: str | None) -> Plan:
    """The timeframe's plan, on another export (`--source csv:DIR`) and other test windows
    (`--windows START:END,...`, dates) where given."""
    base = PLANS[timeframe]
    data = base.data
    if source:
        if not source.startswith("csv:"):
            raise SystemExit(f"--source {source!r}: give csv:DIR, a folder of <SYMBOL>.csv or <SYMBOL>_<tf>.csv files")
        data = Path(source.removeprefix("csv:"))
    if not data.is_dir():
        raise SystemExit(f"no data folder {data} (--source csv:DIR, or the project's shared real data)")
    return Plan(data, parse_windows(windows) if windows else base.windows, base.max_origins)


def parse_windows(text: str) -> list[tuple[datetime, datetime]]:
    """`START:END,...` (ISO dates) as test windows, each start before its end."""
    out = []
    for item in text.split(","):
        try:
            start, end = (_utc(part.strip()) for part in item.split(":"))
        except ValueError:
            raise SystemExit(f"--windows {item!r}: give START:END with ISO dates, e.g. 2023-01-01:2023-07-01") from None
        if end <= start:
            raise SystemExit(f"--windows {item!r}: the end must be after the start")
        out.append((start, end))
    return out


@dataclass
class Blocks:
    """Each origin's bootstrap block: of 10 candles of origin time, and of 30 for the coverage at
    h = 30, whose outcomes overlap for origins less than 30 candles apart (shorter blocks would
    understate its spread)."""
    short: np.ndarray
    long: np.ndarray

    @classmethod
    def of(cls, origins: Origins, timeframe: str, since: pd.Timestamp | None = None) -> Blocks:
        return cls(time_blocks(origins, timeframe, since=since),
                   time_blocks(origins, timeframe, candles=HORIZON, since=since))

    def moved(self, by: int) -> Blocks:
        return Blocks(self.short + by, self.long + by)

    def for_horizon(self, h: int) -> np.ndarray:
        """The blocks a coverage figure at horizon `h` resamples."""
        return self.long if h == HORIZON else self.short

    @staticmethod
    def joined(parts: list[Blocks]) -> Blocks:
        return Blocks(np.concatenate([b.short for b in parts]), np.concatenate([b.long for b in parts]))


@dataclass
class Outcomes:
    """One model's outcomes on one window, kept to pool a timeframe's windows: whether each origin's
    band covered at h = 1 and 30 (with each origin's block), the steps that called a direction, and
    the interval scores of its band and of today's band at HORIZONS (origins x len(HORIZONS))."""
    covered: dict[int, np.ndarray]
    blocks: Blocks
    steps: CalledSteps
    band_score: np.ndarray
    todays_score: np.ndarray

    def offset(self, by: int) -> Outcomes:
        """The same outcomes with block ids moved by `by`: windows pooled keep their blocks apart."""
        return Outcomes(self.covered, self.blocks.moved(by), self.steps.moved(by), self.band_score, self.todays_score)

    def save(self, path: Path) -> None:
        """Written atomically beside the run's JSON, so that a stopped run resumes (`--resume`) and
        still pools every window: a window of hourly candles takes most of an hour to fit."""
        arrays = {f"covered_{h}": c for h, c in self.covered.items()}
        arrays.update(blocks_short=self.blocks.short, blocks_long=self.blocks.long, confidence=self.steps.confidence,
                      correct=self.steps.correct, step_blocks=self.steps.blocks, band_score=self.band_score,
                      todays_score=self.todays_score)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with partial.open("wb") as f:
            np.savez_compressed(f, **arrays)
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> Outcomes:
        with np.load(path) as z:
            covered = {int(k.split("_")[1]): z[k] for k in z.files if k.startswith("covered_")}
            return cls(covered, Blocks(z["blocks_short"], z["blocks_long"]),
                       CalledSteps(z["confidence"], z["correct"], z["step_blocks"]), z["band_score"], z["todays_score"])


def band_covers(fc: ForecastArrays, actual: np.ndarray) -> np.ndarray:
    """(origins x horizon) whether each step's 80 % band held the close that came."""
    c0 = fc.last_close[:, None]
    return (np.log(fc.lower / c0) <= actual) & (actual <= np.log(fc.upper / c0))


def score(model: ForecastModel, origins: Origins, all_blocks: Blocks, today: tuple[np.ndarray, np.ndarray],
          market: MarketReplay) -> tuple[dict[str, Any], Outcomes]:
    blocks = all_blocks.short
    shift = market.shift_at(model.calibration.band, origins.windows.stamps[:, -1], HORIZON)
    fc = model.predict_windows(origins.windows, HORIZON, shift)
    actual = origins.actual_close
    inside = band_covers(fc, actual)
    picks = [h - 1 for h in HORIZONS]
    c0 = fc.last_close[:, None]
    band_score = interval_score(np.log(fc.lower / c0), np.log(fc.upper / c0), actual)[:, picks]
    todays_score = interval_score(today[0], today[1], actual)[:, picks]
    err, naive = np.abs(fc.cum_return - actual), np.abs(actual)
    raw_err = np.abs(fc.raw_return - actual)  # the model's own forecast, before shrinking toward naive
    out: dict[str, Any] = {"mae_ratio": {}, "raw_mae_ratio": {}, "coverage_80": {}}
    for h in HORIZONS:
        out["mae_ratio"][str(h)] = ratio_interval(err[:, h - 1], naive[:, h - 1], blocks)
        out["raw_mae_ratio"][str(h)] = ratio_interval(raw_err[:, h - 1], naive[:, h - 1], blocks)
    out["interval_score_ratio"] = {str(h): ratio_interval(band_score[:, i], todays_score[:, i], blocks)
                                   for i, h in enumerate(HORIZONS)}
    # where validation proved the model's edge (`calibration.proven_edge`): how far, and how much kept
    out["edge_horizon"] = int(model.calibration.edge_horizon) if model.calibration.n_origins else 0
    out["kept_share"] = [round(float(x), 3) for x in model.calibration.shrink[: out["edge_horizon"]]]
    out["band_widening"] = float(np.mean(np.diff(np.log(fc.upper / fc.lower), axis=1) >= -1e-9))
    out["coverage_interval"] = {}
    covered = {}
    for h in (1, HORIZON):
        covered[h] = inside[:, h - 1]
        out["coverage_80"][str(h)] = float(np.mean(covered[h]))
        out["coverage_interval"][str(h)] = share_interval(covered[h], all_blocks.for_horizon(h))
    steps = CalledSteps.of(fc.direction, fc.confidence, actual, blocks)
    out["called"] = float(np.mean(fc.direction != 0))
    out["reliability"] = steps.reliability()
    return out, Outcomes(covered, all_blocks, steps, band_score, todays_score)


def pooled(outcomes: list[Outcomes]) -> dict[str, Any]:
    """Coverage and reliability over all of a timeframe's test windows together, with block
    intervals: one window holds few independent market moves, the windows together several times
    more, so a lean that no single window can resolve may show here."""
    parts = [o.offset(i * 1_000_000) for i, o in enumerate(outcomes)]
    all_blocks = Blocks.joined([o.blocks for o in parts])
    blocks = all_blocks.short
    out: dict[str, Any] = {"windows": len(parts), "origins": int(len(blocks)), "coverage_80": {}}
    for h in (1, HORIZON):
        out["coverage_80"][str(h)] = share_interval(np.concatenate([o.covered[h] for o in parts]),
                                                    all_blocks.for_horizon(h))
    band_score, todays_score = (np.concatenate([getattr(o, k) for o in parts]) for k in ("band_score", "todays_score"))
    out["interval_score_ratio"] = {str(h): ratio_interval(band_score[:, i], todays_score[:, i], blocks)
                                   for i, h in enumerate(HORIZONS)}
    steps = CalledSteps.pooled([o.steps for o in parts])
    out["called"] = float(len(steps.confidence) / (len(blocks) * HORIZON))
    out["reliability"] = steps.reliability()
    return out


EVERY_CANDLE_BATCH = 4000  # origins per batch: an hourly quarter's 44,000 windows at once would hold ~1 GB


def every_candle(model: ForecastModel, test: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp,
                 timeframe: str, market: MarketReplay) -> dict[str, Any]:
    """Coverage of `model`'s 80 % band at h = 1 and 30 with every candle of the window whose next 30
    candles are known as an origin, not the staggered sample the other figures share: at h = 1 the
    sample's 600 origins leave a spread that every candle (up to ~44,000 intraday) narrows; at
    h = 30 neighbouring origins share their future, so little narrows there."""
    covered: dict[int, list[np.ndarray]] = {1: [], HORIZON: []}
    blocks: list[Blocks] = []
    symbols = list(test)
    per_symbol = max(int(in_period(f, start, end).sum()) for f in test.values())
    step = max(1, EVERY_CANDLE_BATCH // max(1, per_symbol))
    for i in range(0, len(symbols), step):
        batch = {s: test[s] for s in symbols[i: i + step]}
        try:
            origins = select_origins(batch, start, end, model.window, max_origins=sys.maxsize, horizon=HORIZON)
        except ValueError:
            continue  # none of these symbols has a candle of the window with a full serving window
        shift = market.shift_at(model.calibration.band, origins.windows.stamps[:, -1], HORIZON)
        inside = band_covers(model.predict_windows(origins.windows, HORIZON, shift), origins.actual_close)
        for h in covered:
            covered[h].append(inside[:, h - 1])
        blocks.append(Blocks.of(origins, timeframe, since=start))
    joined = Blocks.joined(blocks)
    return {"origins": int(len(joined.short)), "blocks": int(len(np.unique(joined.short))),
            "coverage_80": {str(h): share_interval(np.concatenate(parts), joined.for_horizon(h))
                            for h, parts in covered.items()}}


@dataclass(frozen=True)
class Models:
    """The models' parameters every window fits with, and how many coins of each data set."""

    params: dict[str, Any]  # the recursive XGBoost's
    direct_params: dict[str, dict[str, Any]]  # each direct model's
    top: int | None  # only the first N coins (None: all)


def run_window(timeframe: str, plan: Plan, start: datetime, end: datetime,
               models_of: Models) -> tuple[dict[str, Any], dict[str, Outcomes]]:
    params, direct_params, top = models_of.params, models_of.direct_params, models_of.top
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tickers = fill_lake(Path(tmp), plan, timeframe, end, top, train_end=start)
        timer = StageTimer(f"{timeframe} {start:%Y-%m-%d}", echo=lambda line: print(line, flush=True))
        spec = FitSpec(tmp, tickers, timeframe, pd.Timestamp(start), FRACTIONS, params, direct_params, use_ray=False,
                       calibration_origins=plan.max_origins)
        fitted = fit_candidates(timer, spec)
        candidates, candles, split = fitted.candidates, fitted.candles, fitted.split
        choice = choose(candidates, candles, split, plan.max_origins)
        print(f"[{timeframe} {start:%Y-%m-%d}] choose     {choice.describe()}", flush=True)
        chosen = fitted.deployed(choice.name, choice.forecaster)
        test = load_candles(tmp, list(candles), timeframe, pd.Timestamp(end))
        window = max(f.window for f in candidates.values())
        stride = sample_stride(test, pd.Timestamp(start), pd.Timestamp(end), plan.max_origins)
        origins = select_origins(test, pd.Timestamp(start), pd.Timestamp(end), window, stride=stride,
                                 max_origins=plan.max_origins, horizon=HORIZON)
        blocks = Blocks.of(origins, timeframe)
        today = todays_band(candles, split, timeframe, origins.windows.close)
        # each candidate beside its refit on train + validation (the A/B of refitting)
        models: dict[str, ForecastModel] = {}
        for name, candidate in candidates.items():
            models[name] = candidate
            if name in fitted.refits:
                models[refit_name(name)] = fitted.refits[name]
        models[f"auto ({choice.name})"] = chosen
        market = MarketReplay(test)  # candidates of one fit share their band's replay
        scored = {name: score(model, origins, blocks, today, market) for name, model in models.items()}
        dense = every_candle(chosen, test, pd.Timestamp(start), pd.Timestamp(end), timeframe, market)
        band = band_every_candle(chosen.calibration.band, test, (pd.Timestamp(start), pd.Timestamp(end)),
                                 (split.valid_start, split.valid_end), timeframe, market)
    scores = {name: s for name, (s, _) in scored.items()}
    outcomes = {name.split(" ")[0]: o for name, (_, o) in scored.items()}  # "auto (naive)" pools as "auto"
    return {"timeframe": timeframe, "window": f"{start:%Y-%m-%d} to {end:%Y-%m-%d}", "symbols": len(candles),
            "origins": len(origins), "stride": stride, "blocks": int(len(np.unique(blocks.short))), "chosen": choice.name,
            "validation_mae_vs_naive": choice.validation.scores,
            "validation_intervals": choice.validation.intervals,
            "validation_worst_horizon": choice.validation.worst_horizon,
            "validation_edge_horizons": choice.validation.edge, "models": scores,
            "chosen_every_candle": dense, "band_every_candle": band.summary(),
            "training_history": training_history(candles),
            "seconds": round(time.perf_counter() - started, 1)}, outcomes


def chosen_scores(result: dict[str, Any]) -> dict[str, Any]:
    """The scores of the model `auto` chose in one window's result (saved as "auto (<name>)")."""
    return next(v for k, v in result["models"].items() if k.startswith("auto"))


def window_table(result: dict[str, Any]) -> list[str]:
    """Every model of one window: MAE ratio to naive with its interval per horizon, coverage, and
    the share of steps that call a direction; the chosen model's reliability table."""
    head = " ".join(f"{'MAE/naive h' + str(h):>21}" for h in HORIZONS)
    lines = [f"{'model':<30} {head}  {'cov h1':>7} {'cov h30':>7} {'called':>7}"]
    for name, s in result["models"].items():
        cells = " ".join(f"{r:>7.3f} [{lo:.3f},{hi:.3f}]" for r, lo, hi in (s["mae_ratio"][str(h)] for h in HORIZONS))
        lines.append(f"{name:<30} {cells}  {s['coverage_80']['1']:>7.3f} {s['coverage_80']['30']:>7.3f} "
                     f"{s['called']:>7.3f}")
    for name, s in result["models"].items():  # refits' A/B on the models' own forecasts (shrinkage hides it)
        raw = s.get("raw_mae_ratio")
        if raw and not name.startswith("auto"):
            cells = " ".join(f"{r:>7.3f} [{lo:.3f},{hi:.3f}]" for r, lo, hi in (raw[str(h)] for h in HORIZONS))
            lines.append(f"{name + ' unshrunk':<30} {cells}")
    if any("interval_score_ratio" in s for s in result["models"].values()):
        lines.append(f"{'band: interval score / today':<30} " + " ".join(f"{'IS/today h' + str(h):>21}" for h in HORIZONS)
                     + f"  {'widens':>7}")
        for name, s in result["models"].items():
            ratio = s["interval_score_ratio"]
            cells = " ".join(f"{r:>7.3f} [{lo:.3f},{hi:.3f}]" for r, lo, hi in (ratio[str(h)] for h in HORIZONS))
            lines.append(f"{name:<30} {cells}  {s['band_widening']:>7.3f}")
    chosen = chosen_scores(result)
    if chosen["reliability"]:
        rows = ", ".join(f"{r['predicted']:.3f}->{r['observed']:.3f} (n {r['n']})" for r in chosen["reliability"])
        lines.append(f"reliability of the chosen model (stated -> observed): {rows}")
    else:
        lines.append("reliability: every step flat (no direction called)")
    dense = chosen_coverage(result, every=True)
    if dense is not None:
        lines.append(f"the chosen band on every test candle ({result['chosen_every_candle']['origins']} origins): "
                     + ", ".join(f"cover h{h} {dense[h][0]:.3f} [{dense[h][1]:.3f}, {dense[h][2]:.3f}]"
                                 for h in ("1", str(HORIZON))))
    return lines


def print_window(result: dict[str, Any]) -> None:
    print(f"\n== {result['timeframe']} test {result['window']}: {result['symbols']} symbols, {result['origins']} "
          f"origins every {result['stride']} candles, {result['blocks']} bootstrap blocks, {result['seconds']} s; "
          f"chosen on validation: {result['chosen']}")
    print("\n".join(window_table(result)))


def _coverage(scores: dict[str, Any], h: str) -> str:
    """Coverage with its block-bootstrap interval where the run saved one."""
    cover = f"{scores['coverage_80'][h]:.3f}"
    interval = scores.get("coverage_interval", {}).get(h)
    return cover if interval is None else f"{cover} [{interval[1]:.3f}, {interval[2]:.3f}]"


COVERAGE_GOAL = (0.77, 0.83)  # the goal for the 80 % band's coverage on every test window


def chosen_coverage(result: dict[str, Any], every: bool) -> dict[str, list[float]] | None:
    """The chosen band's coverage with its interval per horizon ("1", "30": value, low, high), on the
    window's sample of origins or (`every`) on every test candle; None where the run saved none."""
    if every:
        return result.get("chosen_every_candle", {}).get("coverage_80")
    return chosen_scores(result).get("coverage_interval")


def goal_table(results: list[dict[str, Any]], every: bool = False) -> list[str]:
    """Per timeframe and horizon (and all windows), how many windows' chosen band covered within
    COVERAGE_GOAL, beside how many a band covering exactly 80 % would on average with these
    windows' sampling spread, and its chance of being within on all of them (`chance_within`)."""
    out = ["| timeframe | horizon | windows within 0.77-0.83, measured | a band covering exactly 80 %: expected within "
           "| its chance to be within on every window |", "|---|---|---|---|---|"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(r["timeframe"], []).append(r)
    if len(groups) > 1:
        groups["all"] = results
    for timeframe, rows in groups.items():
        coverages = [chosen_coverage(r, every) for r in rows]
        if any(c is None for c in coverages):
            continue  # a run saved before these figures
        for h in ("1", str(HORIZON)):
            intervals = [(c[h][0], c[h][1], c[h][2]) for c in coverages if c is not None]
            within = sum(COVERAGE_GOAL[0] <= value <= COVERAGE_GOAL[1] for value, _, _ in intervals)
            expected, chance = chance_within(intervals, COVERAGE_GOAL, 0.80)
            out.append(f"| {timeframe} | {h} | {within} of {len(rows)} | {expected:.1f} of {len(rows)} | {chance:.2%} |")
    return out


def every_candle_table(results: list[dict[str, Any]]) -> list[str]:
    """The chosen band's coverage on every test candle of each window, beside the sample's."""
    out = ["| timeframe | test window | chosen | origins (blocks) | cover h1 [95 %] | cover h30 [95 %] "
           "| the sample's h1; h30 |", "|---|---|---|---|---|---|---|"]
    for r in results:
        dense = r.get("chosen_every_candle")
        if dense is None:
            continue
        c1, c30 = dense["coverage_80"]["1"], dense["coverage_80"][str(HORIZON)]
        auto = chosen_scores(r)["coverage_80"]
        out.append(f"| {r['timeframe']} | {r['window']} | {r['chosen']} | {dense['origins']} ({dense['blocks']}) "
                   f"| {c1[0]:.3f} [{c1[1]:.3f}, {c1[2]:.3f}] | {c30[0]:.3f} [{c30[1]:.3f}, {c30[2]:.3f}] "
                   f"| {auto['1']:.3f}; {auto[str(HORIZON)]:.3f} |")
    return out


RELIABILITY_GOAL = 0.05  # stated confidence within 5 points of the observed hit rate, per bin


def off_bins(table: list[dict[str, Any]]) -> int:
    """Bins of a reliability table whose whole 95 % interval of the hit rate lies more than 5
    points from the stated confidence: a miss of the goal that the window's luck cannot explain."""
    return sum(1 for b in table if "observed_low" in b and (b["observed_low"] > b["predicted"] + RELIABILITY_GOAL
                                                           or b["observed_high"] < b["predicted"] - RELIABILITY_GOAL))


def worst_gap(table: list[dict[str, Any]]) -> str:
    """The largest stated - observed of a reliability table, with how many bins provably miss."""
    gap = max((b["predicted"] - b["observed"] for b in table), key=abs)
    provable = f", {off_bins(table)}/{len(table)} bins off beyond chance" if "observed_low" in table[0] else ""
    return f"{gap:+.3f}{provable}"


def pooled_table(pools: dict[str, dict[str, Any]]) -> list[str]:
    """Every model's coverage and reliability over all test windows of each timeframe together."""
    out = ["| timeframe | model | windows (origins) | cover h1 [95 %] | cover h30 [95 %] | band IS / today's: h1; h5; "
           "h10; h30 [95 %] | called | reliability: worst gap (stated - observed) |", "|---|---|---|---|---|---|---|---|"]
    for timeframe, models in pools.items():
        for name, p in models.items():
            c1, c30 = p["coverage_80"]["1"], p["coverage_80"]["30"]
            gap = worst_gap(p["reliability"]) if p["reliability"] else "nothing called"
            ratio = p.get("interval_score_ratio")
            band = "; ".join(f"{r:.3f}" for r, _, _ in (ratio[str(h)] for h in HORIZONS[:-1])) if ratio else "-"
            if ratio:
                r30 = ratio[str(HORIZON)]
                band += f"; {r30[0]:.3f} [{r30[1]:.3f}, {r30[2]:.3f}]"
            out.append(f"| {timeframe} | {name} | {p['windows']} ({p['origins']}) | {c1[0]:.3f} [{c1[1]:.3f}, "
                       f"{c1[2]:.3f}] | {c30[0]:.3f} [{c30[1]:.3f}, {c30[2]:.3f}] | {band} | {p['called']:.0%} | {gap} |")
    return out


def markdown(results: list[dict[str, Any]], pools: dict[str, dict[str, Any]] | None = None) -> str:
    """bench/README.md's tables of a run (`--render honesty.json`): the chosen forecaster per
    window, the candidates' worst reliability bins, every timeframe's windows pooled (where the
    run saved them), and every model per window."""
    out = ["The chosen forecaster (`auto`) per window, against naive on the same origins:", "",
           "| timeframe | test window | chosen | MAE/naive h1 [95 %] | h5 | h10 | h30 [95 %] | cover h1 [95 %] "
           "| cover h30 [95 %] "
           "| candidates at h30: best; worst |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        auto = chosen_scores(r)
        m = auto["mae_ratio"]
        h30 = {k: v["mae_ratio"]["30"][0] for k, v in r["models"].items() if not k.startswith("auto")}
        best, worst = min(h30, key=lambda k: h30[k]), max(h30, key=lambda k: h30[k])
        out.append(f"| {r['timeframe']} | {r['window']} | {r['chosen']} | {m['1'][0]:.3f} [{m['1'][1]:.3f}, "
                   f"{m['1'][2]:.3f}] | {m['5'][0]:.3f} | {m['10'][0]:.3f} | {m['30'][0]:.3f} [{m['30'][1]:.3f}, "
                   f"{m['30'][2]:.3f}] | {_coverage(auto, '1')} | {_coverage(auto, '30')} | "
                   f"{best} {h30[best]:.3f}; {worst} {h30[worst]:.3f} |")
    out += ["", "The coverage goal per window against what luck allows (each window's coverage interval read as "
                "a normal one):", "", *goal_table(results)]
    if all("chosen_every_candle" in r for r in results):
        out += ["", "The chosen band on every test candle of each window (every candle whose next 30 are known is "
                    "an origin), and the goal against luck on those:", "", *every_candle_table(results), "",
                *goal_table(results, every=True)]
    out += ["", "Reliability of the candidates on the test windows:", "",
            "| timeframe | test window | largest reliability gap per candidate (worst bin, stated - observed; "
            "bins whose 95 % interval of the hit rate lies over 5 points from the stated confidence; "
            "candidates calling a direction on >= 10 % of steps) |", "|---|---|---|"]
    for r in results:
        gaps = []
        for name, s in r["models"].items():
            if name.startswith("auto") or s["called"] < 0.1 or not s["reliability"]:
                continue
            gaps.append(f"{name} {worst_gap(s['reliability'])} ({s['called']:.0%} called)")
        out.append(f"| {r['timeframe']} | {r['window']} | {', '.join(gaps) or 'none'} |")
    if pools:
        out += ["", "All test windows of a timeframe together (blocks of each window kept apart):", "",
                *pooled_table(pools)]
    out += ["", "Every model, per window (`bench/results/honesty.json` holds the reliability tables too):"]
    for r in results:
        out += ["", f"{r['timeframe']} test {r['window']}: {r['symbols']} symbols, {r['origins']} origins (every "
                    f"{r['stride']} candles, {r['blocks']} bootstrap blocks), chosen on validation: **{r['chosen']}**",
                "", "```", *window_table(r), "```"]
    return "\n".join(out)


def outcomes_dir(out: Path, timeframe: str, start: datetime) -> Path:
    """Where one window's outcomes (every model's, to pool) lie beside the run's JSON."""
    return out.with_name(f"{out.stem}.outcomes") / f"{timeframe}_{start:%Y-%m-%d}"


def saved_window(saved: list[dict[str, Any]], out: Path, timeframe: str, start: datetime,
                 end: datetime) -> tuple[dict[str, Any], dict[str, Outcomes]] | None:
    """A window a stopped run finished: its result in the JSON and its outcomes beside it."""
    label = f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"
    result = next((r for r in saved if r["timeframe"] == timeframe and r["window"] == label), None)
    folder = outcomes_dir(out, timeframe, start)
    if result is None or not folder.is_dir():
        return None
    return result, {path.stem: Outcomes.load(path) for path in sorted(folder.glob("*.npz"))}


@dataclass
class Run:
    """A run's results so far, written after every window (atomically) so that `--resume` goes on
    where it stopped and still pools every window of a timeframe."""
    out: Path
    models: Models
    results: list[dict[str, Any]]
    pools: dict[str, dict[str, Any]]

    @classmethod
    def start(cls, out: Path, models: Models, resume: bool) -> tuple[Run, list[dict[str, Any]]]:
        """A new run, and (`resume`) the windows a stopped run with the same models finished."""
        if not resume or not out.exists():
            return cls(out, models, [], {}), []
        saved = json.loads(out.read_text())
        same = json.loads(json.dumps([models.params, models.direct_params, models.top], default=str))
        if [saved["params"], saved["direct_params"], saved.get("top")] != same:
            raise SystemExit(f"--resume: {out} was run with other models' parameters; "
                             "run without --resume (or with another --out)")
        return cls(out, models, [], {}), saved["results"]

    def timeframe(self, timeframe: str, plan: Plan, windows: list[tuple[datetime, datetime]],
                  saved: list[dict[str, Any]]) -> None:
        kept: dict[str, list[Outcomes]] = {}
        for start, end in windows:
            done = saved_window(saved, self.out, timeframe, start, end)
            if done is None:
                result, outcomes = run_window(timeframe, plan, start, end, self.models)
                for name, o in outcomes.items():
                    o.save(outcomes_dir(self.out, timeframe, start) / f"{name}.npz")
            else:
                result, outcomes = done
                print(f"[{timeframe} {start:%Y-%m-%d}] resumed from {self.out}", flush=True)
            print_window(result)
            self.results.append(result)
            for name, o in outcomes.items():
                kept.setdefault(name, []).append(o)
            self.pools[timeframe] = {name: pooled(parts) for name, parts in kept.items()}
            self.write()
        print("\n".join(["", f"== {timeframe}, all test windows together",
                         *pooled_table({timeframe: self.pools[timeframe]})]))

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        partial = self.out.with_name(self.out.name + ".partial")
        partial.write_text(json.dumps({"params": self.models.params, "direct_params": self.models.direct_params,
                                       "top": self.models.top, "results": self.results, "pooled": self.pools},
                                      indent=1, default=str))
        partial.replace(self.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeframes", default="1h,4h,1d")
    parser.add_argument("--top", type=int, help="only the first N coins of each data set (default: all)")
    parser.add_argument("--windows", help="test windows START:END,... (ISO dates; default: the shared data's), or N: "
                                           "only the first N of them")
    parser.add_argument("--source", help="csv:DIR: judge on this export instead of ../shared/data")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N test windows of each timeframe")
    parser.add_argument("--resume", action="store_true",
                        help="go on with a stopped run of --out: its finished windows are read, not fitted again")
    parser.add_argument("--n-estimators", type=int)
    parser.add_argument("--max-depth", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--render", type=Path, help="print bench/README.md's tables of a saved run and stop")
    args = parser.parse_args()
    if args.render:
        saved = json.loads(args.render.read_text())
        print(markdown(saved["results"], saved.get("pooled", {})))
        return
    params, direct_params = model_params(args, dict(DEFAULT_PARAMS))
    run, saved = Run.start(args.out, Models(params, direct_params, args.top), args.resume)
    first = int(args.windows) if args.windows and args.windows.isdigit() else None
    for timeframe in args.timeframes.split(","):
        plan = plan_of(timeframe, args.source, None if first else args.windows)
        run.timeframe(timeframe, plan, plan.windows[args.skip:][: first], saved)
    print(f"\nresults in {args.out}")


if __name__ == "__main__":
    main()
