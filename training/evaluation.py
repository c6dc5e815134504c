"""Walk-forward evaluation of a forecaster against the naive forecast, per horizon.

Origins are candles of a period (validation for calibration, holdout or test for scoring) that
have a full feature window before them and `HORIZON` known candles after them, spaced `stride`
candles apart (each symbol at its own offset, so that together they cover every candle) and
evenly thinned to at most `max_origins`.

Metrics, for the model and for naive (last close carried forward), at each horizon h:
- `mae`: mean |forecast - actual| of the log return of close against the last known close;
- `mase`: that MAE divided by the in-sample one-step naive MAE (mean |1-candle log return| of
  the training period), so 1.0 at h = 1 means "as good as naive on the training data";
- `directional_accuracy`: share of the origins that call a direction (not `flat`) whose direction
  matched the outcome (0.5 where none calls one). Naive has
  no direction, so it is scored as always "up" (the base rate a constant guess gets);
- `coverage_80`: share of actual closes inside the reported 80 % band; naive's band is the
  volatility-scaled quantiles of its own residuals from the calibration period.
The summary adds `mae_high_low`: the error of the predicted candle highs and lows, which a model
with no knowledge of volatility cannot get right.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from market_data.timeframes import spec
from stats.bootstrap import runs_of_time
from stats.reliability import reliability_table
from training.band.market import MarketReplay
from training.forecaster import HORIZON, ForecastArrays, ForecastModel, Windows
from training.scores import interval_score, pinball_loss


@dataclass
class Origins:
    symbols: list[str]
    windows: Windows
    actual_close: np.ndarray  # (origins x horizon) cumulative log return of close
    actual_high: np.ndarray  # log(high[t+h] / close[t])
    actual_low: np.ndarray

    def __len__(self) -> int:
        return len(self.symbols)


def in_period(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Which of a symbol's candles lie in the period [start, end)."""
    stamps = frame["timestamp"]
    return (stamps >= start).to_numpy() & (stamps < end).to_numpy()


def sample_stride(candles: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp, max_origins: int) -> int:
    """The spacing that spreads about `max_origins` origins over all the period's candles, so a
    sample spans the whole period rather than its first days (select_origins then staggers the
    symbols' offsets, so that together they reach more candle times)."""
    eligible = sum(int(in_period(f, start, end).sum()) for f in candles.values())
    return max(1, int(np.ceil(eligible / max_origins)))


def select_origins(candles: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp, window: int,
                   stride: int = 1, max_origins: int = 1000, horizon: int = HORIZON) -> Origins:
    """Origins whose time lies in [start, end) and whose next `horizon` candles are known."""
    picks: list[tuple[str, int]] = []
    for k, (symbol, frame) in enumerate(candles.items()):
        eligible = np.where(in_period(frame, start, end))[0]
        eligible = eligible[(eligible >= window - 1) & (eligible + horizon < len(frame))]
        # symbols start at staggered offsets, so that together they cover every candle of the
        # period instead of the same few (coins move together: same-day origins say one thing)
        picks.extend((symbol, int(i)) for i in eligible[k % stride::stride])
    if len(picks) > max_origins:
        keep = np.linspace(0, len(picks) - 1, max_origins).round().astype(int)
        picks = [picks[i] for i in np.unique(keep)]
    if not picks:
        raise ValueError(f"no forecast origins between {start} and {end} with {window} candles before "
                         f"and {horizon} after; the period is too short or the lake too small")
    frames, closes, highs, lows = [], [], [], []
    for symbol, i in picks:
        frame = candles[symbol]
        frames.append(frame.iloc[i - window + 1: i + 1])
        future = frame.iloc[i + 1: i + 1 + horizon]
        c0 = float(frame["close"].iloc[i])
        closes.append(np.log(future["close"].to_numpy() / c0))
        highs.append(np.log(future["high"].to_numpy() / c0))
        lows.append(np.log(future["low"].to_numpy() / c0))
    return Origins([s for s, _ in picks], Windows.from_frames(frames, window), np.array(closes), np.array(highs),
                   np.array(lows))


BLOCK_CANDLES = 10


def time_blocks(origins: Origins, timeframe: str, candles: int = BLOCK_CANDLES,
                since: pd.Timestamp | None = None) -> np.ndarray:
    """Block id of each origin: its origin time in runs of `candles` candles from `since` (the
    earliest origin where not given), all symbols together (`stats.bootstrap.runs_of_time`)."""
    return blocks_of(pd.DatetimeIndex(origins.windows.stamps[:, -1]), timeframe, candles, since)


def blocks_of(stamps: pd.DatetimeIndex, timeframe: str, candles: int = BLOCK_CANDLES,
              since: pd.Timestamp | None = None) -> np.ndarray:
    """`time_blocks` of origin times (naive UTC) given as they are."""
    return runs_of_time(stamps, pd.Timedelta(hours=spec(timeframe).approx_hours), candles, since)


def chance_within(intervals: list[tuple[float, float, float]], goal: tuple[float, float],
                  truth: float) -> tuple[float, float]:
    """For a forecaster whose true rate is `truth` (a band that really covers 80 %): on how many of
    the periods, on average, the measured rate would land within `goal`, and the chance that it
    lands within on every one, given each period's sampling spread (its 95 % block-bootstrap
    interval, as from `share_interval`, read as a normal one). A goal per period that a perfect
    forecaster would often miss by the luck of the period's market moves is not evidence against
    a forecaster that misses it as often."""
    probabilities = []
    for _, low, high in intervals:
        spread = (high - low) / (2 * NormalDist().inv_cdf(0.975))
        if spread <= 0:
            probabilities.append(float(goal[0] <= truth <= goal[1]))
            continue
        dist = NormalDist(truth, spread)
        probabilities.append(dist.cdf(goal[1]) - dist.cdf(goal[0]))
    return float(sum(probabilities)), float(np.prod(probabilities))


def reliability(predicted: np.ndarray, correct: np.ndarray, blocks: np.ndarray | None = None,
                bins: int = 10) -> list[dict]:
    """`stats.reliability.reliability_table` as the backtest's JSON states it."""
    rows = []
    for b in reliability_table(predicted, correct, blocks, bins):
        row = {"predicted": round(b.stated, 4), "observed": round(b.observed, 4), "n": b.n}
        if b.observed_low is not None and b.observed_high is not None:
            row.update(observed_low=round(b.observed_low, 4), observed_high=round(b.observed_high, 4))
        rows.append(row)
    return rows


@dataclass
class CalledSteps:
    """The forecast steps that call a direction (a `flat` step claims none), each with its stated
    confidence, whether the sign came true, and its origin's bootstrap block: what a reliability
    table is made of, for one test period or several pooled."""
    confidence: np.ndarray
    correct: np.ndarray
    blocks: np.ndarray

    @classmethod
    def of(cls, direction: np.ndarray, confidence: np.ndarray, actual_close: np.ndarray,
           blocks: np.ndarray) -> CalledSteps:
        """From (origins x horizons) directions (-1, 0, +1), confidences and outcomes, and each origin's block."""
        called = direction != 0
        correct = np.sign(actual_close) == direction
        return cls(confidence[called], correct[called], np.broadcast_to(np.asarray(blocks)[:, None], called.shape)[called])

    @classmethod
    def pooled(cls, parts: list[CalledSteps]) -> CalledSteps:
        """Several periods' steps together (their blocks must already be apart)."""
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("confidence", "correct", "blocks")))

    def moved(self, by: int) -> CalledSteps:
        """The same steps with block ids moved by `by`, to keep periods apart when pooled."""
        return CalledSteps(self.confidence, self.correct, self.blocks + by)

    def reliability(self) -> list[dict]:
        return reliability(self.confidence, self.correct, self.blocks)


def insample_naive_mae(candles: dict[str, pd.DataFrame], end: pd.Timestamp) -> float:
    """Mean |one-candle log return| over the candles before `end` (MASE's scale)."""
    total, count = 0.0, 0
    for frame in candles.values():
        close = frame.loc[frame["timestamp"] < end, "close"].to_numpy(np.float64)
        if len(close) > 1:
            r = np.abs(np.diff(np.log(close)))
            total, count = total + float(r.sum()), count + len(r)
    if count == 0:
        raise ValueError(f"no candles before {end} to scale MASE with")
    return total / count


def _horizon_metrics(pred: np.ndarray, actual: np.ndarray, direction: np.ndarray, lower: np.ndarray,
                     upper: np.ndarray, scale: float) -> dict[str, dict[str, float]]:
    out = {}
    for h in range(pred.shape[1]):
        a = actual[:, h]
        called = (a != 0) & (direction[:, h] != 0)
        mae = float(np.mean(np.abs(pred[:, h] - a)))
        out[str(h + 1)] = {
            "mae": round(mae, 6),
            "mase": round(mae / scale, 4),
            # over the forecasts that call a direction; with none called, a coin toss
            "directional_accuracy": round(float(np.mean((np.sign(a) == direction[:, h])[called]))
                                          if called.any() else 0.5, 4),
            "coverage_80": round(float(np.mean((lower[:, h] <= a) & (a <= upper[:, h]))), 4),
            # proper scores of the band (log-return units): calibration and sharpness together
            "interval_score": round(float(np.mean(interval_score(lower[:, h], upper[:, h], a))), 6),
            "pinball_10": round(float(np.mean(pinball_loss(lower[:, h], a, 0.1))), 6),
            "pinball_90": round(float(np.mean(pinball_loss(upper[:, h], a, 0.9))), 6),
        }
    return out


def _summary(horizons: dict[str, dict[str, float]], mae_high_low: np.ndarray) -> dict[str, float]:
    rows = list(horizons.values())
    mae = float(np.mean([r["mae"] for r in rows]))
    hl = float(np.mean(mae_high_low))
    return {
        "mae_mean": round(mae, 6),
        "mase_mean": round(float(np.mean([r["mase"] for r in rows])), 4),
        "directional_accuracy_mean": round(float(np.mean([r["directional_accuracy"] for r in rows])), 4),
        "coverage_80_mean": round(float(np.mean([r["coverage_80"] for r in rows])), 4),
        "interval_score_mean": round(float(np.mean([r["interval_score"] for r in rows])), 6),
        "mae_high_low_mean": round(hl, 6),
        "score": round(mae + hl, 6),  # lower is better; what champion/challenger compares
    }


def stated_vs_raw(horizons: dict[str, dict[str, float]], raw: np.ndarray, actual: np.ndarray) -> None:
    """Adds to each horizon's metrics the MAE ratio to naive of the forecast as stated
    (`mae_ratio`) and of the model's own forecast before shrinking toward naive (`raw_mae_ratio`):
    an edge that the shrinkage gives away shows as raw below stated."""
    naive = np.abs(actual).mean(axis=0)
    raw_mae = np.abs(raw[:, : actual.shape[1]] - actual).mean(axis=0)
    for h, row in horizons.items():
        i = int(h) - 1
        row["mae_ratio"] = round(row["mae"] / naive[i], 4) if naive[i] > 0 else 1.0
        row["raw_mae_ratio"] = round(float(raw_mae[i] / naive[i]), 4) if naive[i] > 0 else 1.0


def naive_band(fc: ForecastArrays) -> tuple[np.ndarray, np.ndarray]:
    """Naive's 80 % band as the forecast states it (log returns from the last close): the one it
    would answer with if it stated naive's close at every step, adapted alike."""
    c0 = fc.last_close[:, None]
    return np.log(fc.naive_lower / c0), np.log(fc.naive_upper / c0)


def evaluate(forecaster: ForecastModel, origins: Origins, scale: float,
             market: MarketReplay | None = None) -> dict[str, Any]:
    """The model's and naive's metrics on the same origins: {"model": {...}, "naive": {...}}.
    With `market` (over the coins the origins came from), bands as served: widened by the
    market-wide adaptation replayed over them (`training.band.market`)."""
    horizon = origins.actual_close.shape[1]  # fewer than 30 where history is short (see validated_horizon)
    shift = None if market is None else market.shift_at(forecaster.calibration.band, origins.windows.stamps[:, -1],
                                                         horizon)
    fc = forecaster.predict_windows(origins.windows, horizon, shift)
    c0 = fc.last_close[:, None]
    model_h = _horizon_metrics(fc.cum_return, origins.actual_close, fc.direction, np.log(fc.lower / c0),
                               np.log(fc.upper / c0), scale)
    hl = (np.abs(np.log(fc.high / c0) - origins.actual_high) + np.abs(np.log(fc.low / c0) - origins.actual_low)) / 2
    naive_lo, naive_hi = naive_band(fc)
    zeros = np.zeros_like(origins.actual_close)
    naive_h = _horizon_metrics(zeros, origins.actual_close, np.ones_like(fc.direction), naive_lo, naive_hi, scale)
    naive_hl = (np.abs(origins.actual_high) + np.abs(origins.actual_low)) / 2
    stated_vs_raw(model_h, fc.raw_return, origins.actual_close)
    steps = CalledSteps.of(fc.direction, fc.confidence, origins.actual_close, time_blocks(origins, forecaster.timeframe))
    return {
        "model": {"horizons": model_h, "summary": _summary(model_h, hl), "reliability": steps.reliability()},
        "naive": {"horizons": naive_h, "summary": _summary(naive_h, naive_hl)},
        "n_origins": len(origins),
    }


def accuracy_avg(report: dict) -> float:
    """`models.accuracy_avg`: the model's directional accuracy averaged over horizons 1..30 on the holdout."""
    return float(report["model"]["summary"]["directional_accuracy_mean"])
