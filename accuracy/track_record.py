"""The public track record: how the ledger's forecasts fared, per model version and horizon.

Only forecasts in the ledger count (entered when they were made, so none can be added or
dropped after the fact), and only their steps whose candle has closed (`jobs.track_accuracy`).
Errors are on the close's log return from the forecast's origin, as everywhere in `accuracy`.
Uncertainty is honest about how little a few weeks say: intervals are block bootstraps over
runs of origin time (coins move together, so same-time forecasts are not independent), and the
Diebold-Mariano test against naive runs on those blocks' mean loss differences with a
Newey-West variance, since an h-step forecast overlaps the next h - 1. Below `MIN_N` scored
forecasts a horizon says "not enough data yet" instead of a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from statistics import NormalDist

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from accuracy.scoring import LEVEL_COLUMNS, PIT_BINS, reliability, score
from clock import naive_utc
from stats.bootstrap import ratio_interval, share_interval
from storage.schema import LedgerEntry, ModelRecord, Prediction, PredictionStep
from training.evaluation import BLOCK_CANDLES, blocks_of

MIN_N = 30  # scored forecasts of a version and horizon before figures are shown
NOT_ENOUGH = "not enough data yet"


def diebold_mariano(loss_diff: np.ndarray, blocks: np.ndarray, lag: int) -> tuple[float, float] | None:
    """The DM statistic of mean(loss_diff) = 0 and its two-sided p-value, on the means of the
    time blocks (in time order) with a Newey-West variance of `lag` block lags; None below three
    blocks (no variance to speak of)."""
    frame = pd.DataFrame({"d": loss_diff, "b": blocks}).groupby("b", sort=True)["d"].mean()
    d = frame.to_numpy(np.float64)
    if len(d) < 3:
        return None
    centred = d - d.mean()
    variance = float(centred @ centred) / len(d)
    for k in range(1, min(lag, len(d) - 1) + 1):
        weight = 1.0 - k / (lag + 1)
        variance += 2.0 * weight * float(centred[k:] @ centred[:-k]) / len(d)
    if variance <= 0:
        return None
    stat = float(d.mean() / math.sqrt(variance / len(d)))
    return stat, 2.0 * (1.0 - NormalDist().cdf(abs(stat)))


@dataclass
class HorizonRecord:
    horizon: int
    n: int
    status: str = "ok"  # or NOT_ENOUGH
    mae_ratio: tuple[float, float, float] | None = None  # value, 95 % low, high
    diebold_mariano: tuple[float, float] | None = None  # statistic (negative: model better), p-value
    directional_accuracy: float | None = None
    called: int = 0
    coverage_80: tuple[float, float, float] | None = None
    interval_score: float | None = None  # the served band's, mean, log-return units
    interval_score_ratio: tuple[float, float, float] | None = None  # to naive's band
    crps: float | None = None  # the served distribution's mean, where steps carry one
    pit_histogram: list[float] | None = None  # the share of outcomes in each tenth of it


@dataclass
class VersionRecord:
    model_version: str
    forecasts: int
    horizons: list[HorizonRecord] = field(default_factory=list)
    reliability: pd.DataFrame = field(default_factory=pd.DataFrame)


def ledger_steps(engine: Engine, timeframe: str, since: datetime) -> pd.DataFrame:
    """The scored steps of the ledger's `timeframe` forecasts made at or after `since`: version,
    made_at, horizon, origin (step 1's open), close, band, naive's band, direction, confidence
    and the actual close."""
    ledger, p, s, m = LedgerEntry.__table__, Prediction.__table__, PredictionStep.__table__, ModelRecord.__table__
    origin = PredictionStep.__table__.alias("origin")
    query = (
        sa.select(m.c.version, ledger.c.seq, ledger.c.made_at, s.c.step_number.label("horizon"),
                  origin.c.open.label("origin"), s.c.close, s.c.lower, s.c.upper, s.c.naive_lower, s.c.naive_upper,
                  s.c.direction, s.c.confidence, s.c.actual_close, s.c.q05, s.c.q25, s.c.q50, s.c.q75, s.c.q95)
        .select_from(ledger.join(p, p.c.id == ledger.c.prediction_id).join(m, m.c.id == p.c.model_id)
                     .join(s, s.c.prediction_id == p.c.id)
                     .join(origin, sa.and_(origin.c.prediction_id == p.c.id, origin.c.step_number == 1)))
        .where(p.c.timeframe == timeframe, ledger.c.made_at >= naive_utc(since), s.c.actual_close.is_not(None))
    )
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all())


def summarise(steps: pd.DataFrame, timeframe: str, min_n: int = MIN_N) -> list[VersionRecord]:
    """Per model version (newest first) and horizon: the figures of `ledger_steps`."""
    if steps.empty:
        return []
    frame = steps.copy()
    for column in ("origin", "close", "lower", "upper", "naive_lower", "naive_upper", "actual_close", "confidence",
                   *(c for c in LEVEL_COLUMNS if c in frame)):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["block"] = blocks_of(pd.DatetimeIndex(pd.to_datetime(frame["made_at"])), timeframe)
    frame = frame.join(score(frame, frame["actual_close"]).drop(columns=["actual_close"]))
    # a close exactly at the origin calls neither direction right nor wrong here: left out
    frame["hit"] = frame["is_accurate"].where(frame["actual_close"] != frame["origin"])
    out = []
    newest = frame.groupby("version")["made_at"].max().sort_values(ascending=False)
    for version in newest.index:
        rows = frame[frame["version"] == version]
        record = VersionRecord(str(version), int(rows["seq"].nunique()),
                               reliability=reliability(rows["confidence"], rows["hit"], rows["block"].to_numpy()))
        for horizon, group in rows.groupby("horizon", sort=True):
            record.horizons.append(_horizon(int(horizon), group, min_n))
        out.append(record)
    return out


def _horizon(horizon: int, group: pd.DataFrame, min_n: int) -> HorizonRecord:
    n = len(group)
    if n < min_n:
        return HorizonRecord(horizon, n, NOT_ENOUGH)
    blocks = group["block"].to_numpy()
    called = group["hit"].dropna()
    record = HorizonRecord(
        horizon, n,
        mae_ratio=ratio_interval(group["model_error"].to_numpy(), group["naive_error"].to_numpy(), blocks),
        diebold_mariano=diebold_mariano((group["model_error"] - group["naive_error"]).to_numpy(), blocks,
                                        lag=math.ceil(horizon / BLOCK_CANDLES)),
        directional_accuracy=float(called.mean()) if len(called) else None, called=int(len(called)),
        coverage_80=share_interval(group["covered"].to_numpy(), blocks),
        interval_score=float(group["interval_score"].mean()),
    )
    with_spread = group.dropna(subset=["crps"])
    if len(with_spread) >= min_n:
        record.crps = float(with_spread["crps"].mean())
        record.pit_histogram = [float(with_spread[name].mean()) for name in PIT_BINS]
    with_naive = group.dropna(subset=["naive_interval_score"])
    if len(with_naive) >= min_n:
        record.interval_score_ratio = ratio_interval(with_naive["interval_score"].to_numpy(),
                                                         with_naive["naive_interval_score"].to_numpy(),
                                                         with_naive["block"].to_numpy())
    return record
