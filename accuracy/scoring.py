"""Scoring served forecast steps against what happened: pure functions on DataFrames.

A step's reference is the prediction's origin, the last closed candle's close (step 1's open).
Errors are on the close's log return from that origin, so that coins at any price weigh alike:
the model's error is |log(close / actual)| and naive's (the origin carried forward) is
|log(origin / actual)|. The step's direction was right when the actual close moved that way
from the origin; a close exactly at the origin proves neither direction right. A `flat` step calls
no direction: its `is_accurate` is null and it is left out of directional accuracy (a day of
flat steps only scores 0.5, a coin toss) and of the reliability table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from stats.reliability import reliability_table
from training.scores import crps, interval_score, pinball_loss, pit

RELIABILITY_COLUMNS = ["low", "high", "n", "mean_confidence", "hit_rate", "hit_rate_low", "hit_rate_high"]
BAND_SCORES = ("interval_score", "naive_interval_score", "pinball_10", "pinball_90")
# the whole distribution's (steps stored with quantiles, migration 0012): CRPS, and the share of
# outcomes in each tenth of the PIT (its histogram once pooled)
PIT_BINS = tuple(f"pit_bin_{k}" for k in range(10))
DISTRIBUTION_SCORES = ("crps", *PIT_BINS)
STEP_SCORES = (*BAND_SCORES, *DISTRIBUTION_SCORES)  # averaged per model, horizon and day
LEVEL_COLUMNS = ("q05", "lower", "q25", "q50", "q75", "upper", "q95")  # the step's column of each quantile, in order


def score(steps: pd.DataFrame, actual: pd.Series) -> pd.DataFrame:
    """`steps` has origin, close, lower, upper, direction (and naive_lower, naive_upper where
    stored); `actual` the closes, aligned by index. Returns actual_close, is_accurate,
    model_error, naive_error, covered, and the band's proper scores in log-return units:
    interval_score (of naive's band too: naive_interval_score, NaN without one), pinball_10/90."""
    actual = actual.astype("float64")
    moved = np.sign(actual - steps["origin"])
    said = steps["direction"].map({"up": 1.0, "down": -1.0})  # flat (or unknown): NaN, no call
    hit = (moved == said).astype(float).where(said.notna())
    origin = steps["origin"].astype("float64")
    y = np.log(actual / origin)

    def log_of(column: str) -> pd.Series:
        values = steps[column] if column in steps else pd.Series(np.nan, index=steps.index)
        return np.log(pd.to_numeric(values, errors="coerce").astype("float64") / origin)

    lower, upper = log_of("lower"), log_of("upper")
    return pd.DataFrame({
        **distribution_scores(pd.concat([log_of(c) for c in LEVEL_COLUMNS], axis=1).to_numpy(), y.to_numpy()),
        "actual_close": actual,
        "is_accurate": hit,
        "model_error": np.abs(np.log(steps["close"] / actual)),
        "naive_error": np.abs(np.log(steps["origin"] / actual)),
        "covered": (steps["lower"] <= actual) & (actual <= steps["upper"]),
        "interval_score": interval_score(lower, upper, y),
        "naive_interval_score": interval_score(log_of("naive_lower"), log_of("naive_upper"), y),
        "pinball_10": pinball_loss(lower, y, 0.1),
        "pinball_90": pinball_loss(upper, y, 0.9),
    }, index=steps.index)


def distribution_scores(table: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """CRPS and the PIT bin indicators of each step (`table`: steps x the seven quantiles as log
    returns from the origin; `y` the outcomes); NaN for steps stored without quantiles."""
    known = np.isfinite(table).all(axis=1) & np.isfinite(y)
    out = {name: np.full(len(y), np.nan) for name in DISTRIBUTION_SCORES}
    if known.any():
        out["crps"][known] = crps(table[known], y[known])
        tenth = np.clip((pit(table[known], y[known]) * 10).astype(int), 0, 9)
        for k, name in enumerate(PIT_BINS):
            out[name][known] = (tenth == k).astype(float)
    return out


def pit_histogram(row: Mapping[str, Any]) -> list[float] | None:
    """A pooled row's PIT histogram (the shares of its bins), None where nothing was scored."""
    shares = [row.get(name) for name in PIT_BINS]
    if any(v is None or not np.isfinite(v) for v in shares):
        return None
    return [float(v) for v in shares]


def aggregate(scored: pd.DataFrame) -> pd.DataFrame:
    """Per model_id, timeframe, horizon and day: n, mae, naive_mae, directional_accuracy,
    coverage_80, mean_confidence. `scored` holds those keys plus score()'s columns and confidence."""
    keys = ["model_id", "timeframe", "horizon", "day"]
    if scored.empty:
        return pd.DataFrame(columns=[*keys, "n", "mae", "naive_mae", "directional_accuracy", "coverage_80",
                                     "mean_confidence", *STEP_SCORES])
    grouped = scored.groupby(keys, sort=True)
    return grouped.agg(
        n=("model_error", "size"), mae=("model_error", "mean"), naive_mae=("naive_error", "mean"),
        directional_accuracy=("is_accurate", "mean"), coverage_80=("covered", "mean"),
        mean_confidence=("confidence", "mean"), **{name: (name, "mean") for name in STEP_SCORES},
    ).reset_index().fillna({"directional_accuracy": 0.5})


def combine(daily: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Daily aggregates pooled over days (weighted by n), grouped `by`; adds mae_ratio to naive and
    interval_score_ratio to naive's band (over the days that scored both bands)."""
    figures = ["mae", "naive_mae", "directional_accuracy", "coverage_80", "mean_confidence", *STEP_SCORES]
    if daily.empty:
        return pd.DataFrame(columns=[*by, "n", *figures, "mae_ratio", "interval_score_ratio"])
    daily = daily.copy()
    for name in STEP_SCORES:  # days scored before the band's (or the distribution's) scores existed have none
        daily[name] = pd.to_numeric(daily[name] if name in daily else np.nan, errors="coerce").astype("float64")
    both = daily["interval_score"].notna() & daily["naive_interval_score"].notna()
    daily["paired_score"] = daily["interval_score"].where(both)
    daily["paired_naive"] = daily["naive_interval_score"].where(both)
    sums = [*figures, "paired_score", "paired_naive"]
    weighted = daily[sums].mul(daily["n"], axis=0).assign(n=daily["n"], **{k: daily[k] for k in by})
    counts = daily[sums].notna().mul(daily["n"], axis=0).assign(**{k: daily[k] for k in by})
    pooled = weighted.groupby(by, sort=True).sum(numeric_only=False)
    counted = counts.groupby(by, sort=True).sum(numeric_only=False)
    means = pooled[sums].div(counted[sums].where(counted[sums] > 0))
    out = means.assign(n=pooled["n"]).reset_index()
    out["mae_ratio"] = out["mae"] / out["naive_mae"].where(out["naive_mae"] > 0)
    out["interval_score_ratio"] = out["paired_score"] / out["paired_naive"].where(out["paired_naive"] > 0)
    return out[[*by, "n", *figures, "mae_ratio", "interval_score_ratio"]]


def reliability(confidence: pd.Series, hit: pd.Series, blocks: np.ndarray | None = None) -> pd.DataFrame:
    """Stated confidence against the observed hit rate (`stats.reliability`: bins of about equal
    count, each hit rate with its block-bootstrap interval where `blocks` gives each step's
    block); calibrated means they agree. Steps whose hit is unknown are left out."""
    table = reliability_table(pd.to_numeric(confidence, errors="coerce").to_numpy(np.float64),
                              pd.to_numeric(hit, errors="coerce").to_numpy(np.float64), blocks)
    return pd.DataFrame([{"low": b.low, "high": b.high, "n": b.n, "mean_confidence": b.stated, "hit_rate": b.observed,
                          "hit_rate_low": b.observed_low, "hit_rate_high": b.observed_high} for b in table],
                        columns=RELIABILITY_COLUMNS)
