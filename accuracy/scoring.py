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

import numpy as np
import pandas as pd

CONFIDENCE_BINS = (0.0, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0001)


def score(steps: pd.DataFrame, actual: pd.Series) -> pd.DataFrame:
    """`steps` has origin, close, lower, upper, direction; `actual` the closes, aligned by index.
    Returns actual_close, is_accurate, model_error, naive_error, covered."""
    actual = actual.astype("float64")
    moved = np.sign(actual - steps["origin"])
    said = steps["direction"].map({"up": 1.0, "down": -1.0})  # flat (or unknown): NaN, no call
    hit = (moved == said).astype(float).where(said.notna())
    return pd.DataFrame({
        "actual_close": actual,
        "is_accurate": hit,
        "model_error": np.abs(np.log(steps["close"] / actual)),
        "naive_error": np.abs(np.log(steps["origin"] / actual)),
        "covered": (steps["lower"] <= actual) & (actual <= steps["upper"]),
    }, index=steps.index)


def aggregate(scored: pd.DataFrame) -> pd.DataFrame:
    """Per model_id, timeframe, horizon and day: n, mae, naive_mae, directional_accuracy,
    coverage_80, mean_confidence. `scored` holds those keys plus score()'s columns and confidence."""
    keys = ["model_id", "timeframe", "horizon", "day"]
    if scored.empty:
        return pd.DataFrame(columns=[*keys, "n", "mae", "naive_mae", "directional_accuracy", "coverage_80",
                                     "mean_confidence"])
    grouped = scored.groupby(keys, sort=True)
    return grouped.agg(
        n=("model_error", "size"), mae=("model_error", "mean"), naive_mae=("naive_error", "mean"),
        directional_accuracy=("is_accurate", "mean"), coverage_80=("covered", "mean"),
        mean_confidence=("confidence", "mean"),
    ).reset_index().fillna({"directional_accuracy": 0.5})


def combine(daily: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Daily aggregates pooled over days (weighted by n), grouped `by`; adds mae_ratio to naive."""
    figures = ["mae", "naive_mae", "directional_accuracy", "coverage_80", "mean_confidence"]
    if daily.empty:
        return pd.DataFrame(columns=[*by, "n", *figures, "mae_ratio"])
    weighted = daily[figures].mul(daily["n"], axis=0).assign(n=daily["n"], **{k: daily[k] for k in by})
    pooled = weighted.groupby(by, sort=True).sum(numeric_only=False)
    out = pooled[figures].div(pooled["n"], axis=0).assign(n=pooled["n"]).reset_index()
    out["mae_ratio"] = out["mae"] / out["naive_mae"].where(out["naive_mae"] > 0)
    return out[[*by, "n", *figures, "mae_ratio"]]


def reliability(confidence: pd.Series, hit: pd.Series, bins: tuple[float, ...] = CONFIDENCE_BINS) -> pd.DataFrame:
    """Stated confidence in bins against the observed hit rate: calibrated means they agree."""
    frame = pd.DataFrame({"confidence": confidence.astype(float), "hit": hit.astype(float)}).dropna(subset=["hit"])
    frame["bin"] = pd.cut(frame["confidence"], bins=list(bins), right=False)
    rows = []
    for interval, group in frame.groupby("bin", observed=True, sort=True):
        rows.append({"low": float(interval.left), "high": min(1.0, float(interval.right)), "n": int(len(group)),
                     "mean_confidence": float(group["confidence"].mean()), "hit_rate": float(group["hit"].mean())})
    return pd.DataFrame(rows, columns=["low", "high", "n", "mean_confidence", "hit_rate"])
