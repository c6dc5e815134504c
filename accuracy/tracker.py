"""The accuracy tracker's edge: pending steps from the database, actual closes from the lake or
the market source, scores and aggregates written back.

For every stored step whose candle has closed by `as_of` and has no `actual_close` yet, the
actual close comes from the lake when it holds that candle, else from one market-data request per
symbol and timeframe. Each symbol and timeframe is committed on its own, so an interrupted run
resumes where it stopped, and a re-run finds nothing pending and changes nothing. Steps whose
candle the source cannot give stay empty and are counted. Aggregates (`model_accuracy`) are
recomputed whole for every model and day that gained scores, from the anonymous predictions
only: a signed-in user's copy of a shared forecast is the same forecast and is counted once.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from accuracy.scoring import STEP_SCORES, aggregate, combine, reliability, score
from clock import naive_utc, naive_utc_now
from market_data.source import MarketDataError, MarketSource
from market_data.timeframes import spec
from storage.lake import Lake
from storage.schema import ModelAccuracy, ModelRecord, Prediction, PredictionStep, Symbol
from training.evaluation import blocks_of

log = logging.getLogger(__name__)

# how far a step's candle can close after it opens (a month), for finding a day's steps
LONGEST_CANDLE = timedelta(days=32)


@dataclass
class TrackReport:
    filled: int = 0  # steps that got their actual close
    unavailable: int = 0  # closed steps whose candle the lake and the source could not give
    still_open: int = 0  # steps whose candle has not closed by as_of
    pairs: int = 0  # symbol x timeframe groups with something to fill
    requests: int = 0  # market-data requests made
    from_lake: int = 0  # candles read from the lake instead of the market source
    aggregated_rows: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def closes_at(timestamps: pd.Series, timeframe: str) -> pd.Series:
    """When each candle (by its open time) closes."""
    offset = spec(timeframe).offset()
    return pd.Series(pd.DatetimeIndex(timestamps) + offset, index=timestamps.index)


def _pending(engine: Engine, as_of: datetime) -> pd.DataFrame:
    s, p, sym = PredictionStep.__table__, Prediction.__table__, Symbol.__table__
    origin = PredictionStep.__table__.alias("origin")
    query = (
        sa.select(s.c.id, s.c.timestamp, s.c.close, s.c.lower, s.c.upper, s.c.direction,
                  p.c.timeframe, sym.c.ticker, origin.c.open.label("origin"))
        .join(p, p.c.id == s.c.prediction_id)
        .join(sym, sym.c.id == p.c.symbol_id)
        .join(origin, sa.and_(origin.c.prediction_id == s.c.prediction_id, origin.c.step_number == 1))
        .where(s.c.actual_close.is_(None), s.c.timestamp < naive_utc(as_of))
    )
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all())
    if frame.empty:
        return frame
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return frame


def _unscored(engine: Engine) -> int:
    s = PredictionStep.__table__
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(s.c.actual_close.is_(None))).scalar() or 0)


@dataclass
class _Closes:
    """Where actual closes come from (the lake first, then the market source), as of when, and
    the report that counts both."""

    source: MarketSource
    lake: Lake | None
    as_of: datetime
    report: TrackReport

    def of(self, ticker: str, timeframe: str, needed: pd.DatetimeIndex) -> pd.Series:
        return _actual_closes(self, ticker, timeframe, needed)


def _actual_closes(where: _Closes, ticker: str, timeframe: str, needed: pd.DatetimeIndex) -> pd.Series:
    """Close by open time (naive UTC) for the `needed` candles: the lake first, then one request."""
    source, lake, as_of, report = where.source, where.lake, where.as_of, where.report
    found = pd.Series(dtype="float64")
    if lake is not None and lake.exists(ticker, timeframe):
        held = lake.read(ticker, timeframe, columns=["timestamp", "close"])
        held_ts = pd.DatetimeIndex(held["timestamp"]).tz_convert(None) if len(held) else pd.DatetimeIndex([])
        found = pd.Series(held["close"].to_numpy(), index=held_ts)
        found = found[found.index.isin(needed)]
        report.from_lake += int(found.index.isin(needed).sum())
    missing = needed.difference(found.index)
    if len(missing):
        start = missing.min().tz_localize("UTC").to_pydatetime()
        report.requests += 1
        try:
            candles = source.aggregates(ticker, timeframe, start, as_of)
        except MarketDataError as exc:
            report.failures.append(f"{ticker} {timeframe}: {exc}")
            log.warning("no actual closes for %s %s: %s", ticker, timeframe, exc)
            candles = pd.DataFrame(columns=["timestamp", "close"])
        if len(candles):
            stamps = pd.DatetimeIndex(pd.to_datetime(candles["timestamp"], utc=True)).tz_convert(None)
            closed = (stamps + spec(timeframe).offset()) <= pd.Timestamp(naive_utc(as_of))
            fetched = pd.Series(candles["close"].to_numpy()[closed], index=stamps[closed])
            found = pd.concat([found, fetched[fetched.index.isin(missing)]])
    return found[~found.index.duplicated(keep="last")]


def track(engine: Engine, source: MarketSource, lake: Lake | None, as_of: datetime) -> TrackReport:
    """Fill actual closes of every closed step, then refresh the aggregates that changed."""
    started = time.perf_counter()
    report = TrackReport()
    pending = _pending(engine, as_of)
    touched: set[tuple[uuid.UUID, date]] = set()
    if not pending.empty:
        is_closed = pd.Series(False, index=pending.index)
        for tf, rows in pending.groupby("timeframe"):
            is_closed[rows.index] = closes_at(rows["timestamp"], str(tf)) <= pd.Timestamp(naive_utc(as_of))
        closed = pending[is_closed]
        steps = PredictionStep.__table__
        finder = _Closes(source, lake, as_of, report)
        for (ticker, tf), rows in closed.groupby(["ticker", "timeframe"], sort=True):
            report.pairs += 1
            needed = pd.DatetimeIndex(rows["timestamp"].unique())
            closes = finder.of(str(ticker), str(tf), needed)
            actual = rows["timestamp"].map(closes)
            known = rows[actual.notna()]
            report.unavailable += int(actual.isna().sum())
            if known.empty:
                continue
            scored = score(known, actual[actual.notna()])
            with engine.begin() as conn:  # one symbol and timeframe at a time: resumable
                conn.execute(
                    steps.update().where(steps.c.id == sa.bindparam("step_id"))
                    .values(actual_close=sa.bindparam("actual"), is_accurate=sa.bindparam("hit")),
                    [{"step_id": sid, "actual": float(a), "hit": None if pd.isna(h) else bool(h)}
                     for sid, a, h in zip(known["id"], scored["actual_close"], scored["is_accurate"])],
                )
            report.filled += len(known)
        # the days (of closing) that gained scores, per model
        if report.filled:
            touched = _touched_days(engine, closed["id"].tolist())
    report.still_open = _unscored(engine) - report.unavailable
    report.aggregated_rows = refresh_aggregates(engine, touched)
    report.seconds = time.perf_counter() - started
    return report


def _touched_days(engine: Engine, step_ids: list) -> set[tuple[uuid.UUID, date]]:
    s, p = PredictionStep.__table__, Prediction.__table__
    days: set[tuple[uuid.UUID, date]] = set()
    for chunk in range(0, len(step_ids), 5000):
        ids = step_ids[chunk:chunk + 5000]
        with engine.connect() as conn:
            rows = pd.DataFrame(conn.execute(
                sa.select(p.c.model_id, p.c.timeframe, s.c.timestamp).join(p, p.c.id == s.c.prediction_id)
                .where(s.c.id.in_(ids), s.c.actual_close.is_not(None))).mappings().all())
        for tf, group in rows.groupby("timeframe") if not rows.empty else []:
            day = closes_at(pd.to_datetime(group["timestamp"]), str(tf)).dt.date
            days.update(zip(group["model_id"], day))
    return days


def scored_steps(engine: Engine, models: Iterable[uuid.UUID], since: datetime) -> pd.DataFrame:
    """The scored steps of anonymous predictions of `models` whose candles closed at or after
    `since`: model_id, timeframe, horizon, day, confidence, origin_time (step 1's open, the
    bootstrap block's time) and score()'s columns."""
    s, p = PredictionStep.__table__, Prediction.__table__
    origin = PredictionStep.__table__.alias("origin")
    query = (
        sa.select(p.c.model_id, p.c.timeframe, s.c.step_number.label("horizon"), s.c.timestamp, s.c.close,
                  s.c.lower, s.c.upper, s.c.naive_lower, s.c.naive_upper, s.c.direction, s.c.confidence,
                  s.c.actual_close, s.c.q05, s.c.q25, s.c.q50, s.c.q75, s.c.q95,
                  origin.c.open.label("origin"), origin.c.timestamp.label("origin_time"))
        .join(p, p.c.id == s.c.prediction_id)
        .join(origin, sa.and_(origin.c.prediction_id == s.c.prediction_id, origin.c.step_number == 1))
        .where(p.c.model_id.in_(list(models)), p.c.user_id.is_(None), s.c.actual_close.is_not(None),
               s.c.timestamp >= naive_utc(since) - LONGEST_CANDLE)
    )
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all())
    if frame.empty:
        return frame
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    parts = []
    for tf, group in frame.groupby("timeframe"):
        closed_at = closes_at(group["timestamp"], str(tf))
        parts.append(group.assign(day=closed_at.dt.date)[closed_at >= pd.Timestamp(naive_utc(since))])
    frame = pd.concat(parts)
    frame["confidence"] = frame["confidence"].astype(float)
    scored = score(frame, frame["actual_close"])
    return pd.concat([frame[["model_id", "timeframe", "horizon", "day", "confidence", "origin_time"]],
                      scored.drop(columns=["actual_close"])], axis=1)


def _or_none(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def refresh_aggregates(engine: Engine, touched: set[tuple[uuid.UUID, date]]) -> int:
    """Recompute the `model_accuracy` rows of the touched (model, day) pairs, whole."""
    if not touched:
        return 0
    models = {m for m, _ in touched}
    since = datetime.combine(min(d for _, d in touched), datetime.min.time(), tzinfo=timezone.utc)
    frame = scored_steps(engine, models, since)
    if frame.empty:
        return 0
    frame = frame[[(m, d) in touched for m, d in zip(frame["model_id"], frame["day"])]]
    daily = aggregate(frame)
    table = ModelAccuracy.__table__
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    rows = [{"id": uuid.uuid4(), "model_id": r.model_id, "timeframe": r.timeframe, "horizon": int(r.horizon),
             "date": r.day, "n": int(r.n), "mae": float(r.mae), "naive_mae": float(r.naive_mae),
             "directional_accuracy": float(r.directional_accuracy), "coverage_80": float(r.coverage_80),
             "mean_confidence": _or_none(r.mean_confidence),
             **{name: _or_none(getattr(r, name)) for name in STEP_SCORES},
             "updated_at": naive_utc_now()} for r in daily.itertuples()]
    with engine.begin() as conn:
        for chunk in range(0, len(rows), 2000):
            stmt = insert(table).values(rows[chunk:chunk + 2000])
            stmt = stmt.on_conflict_do_update(
                index_elements=["model_id", "timeframe", "horizon", "date"],
                set_={c: stmt.excluded[c] for c in ("n", "mae", "naive_mae", "directional_accuracy", "coverage_80",
                                                     "mean_confidence", *STEP_SCORES, "updated_at")})
            conn.execute(stmt)
    return len(rows)


@dataclass(frozen=True)
class LiveAccuracy:
    """A model's live figures over a period: per horizon, overall, and the reliability table."""

    model_id: uuid.UUID
    model_version: str
    timeframe: str
    since: datetime
    horizons: pd.DataFrame  # combine(): horizon, n, mae, naive_mae, directional_accuracy, ...
    overall: pd.DataFrame  # one row, pooled over horizons
    reliability: pd.DataFrame


def live_accuracy(engine: Engine, record: ModelRecord, days: int, now: datetime) -> LiveAccuracy:
    since = (now - timedelta(days=days)).astimezone(timezone.utc)
    table = ModelAccuracy.__table__
    with engine.connect() as conn:
        daily = pd.DataFrame(conn.execute(
            sa.select(table).where(table.c.model_id == record.id, table.c.date >= since.date())).mappings().all())
    horizons = combine(daily, ["horizon"])
    overall = combine(daily.assign(all=1) if not daily.empty else daily, ["all"]).drop(columns=["all"],
                                                                                        errors="ignore")
    steps = scored_steps(engine, [record.id], since)
    blocks = blocks_of(pd.DatetimeIndex(pd.to_datetime(steps["origin_time"])), record.timeframe) \
        if not steps.empty else None
    table_ = (reliability(steps["confidence"], steps["is_accurate"], blocks) if not steps.empty
              else reliability(pd.Series(dtype=float), pd.Series(dtype=float)))
    return LiveAccuracy(record.id, record.version, record.timeframe, since, horizons, overall, table_)


COVERAGE_RANGE = (0.70, 0.90)  # outside it, the live 80 % band is mis-calibrated: an alarm


@dataclass(frozen=True)
class LiveSummary:
    """One timeframe's active model over the last days, pooled over horizons."""

    timeframe: str
    model_version: str
    n: int
    mae: float
    naive_mae: float
    mae_ratio: float
    directional_accuracy: float
    coverage_80: float
    interval_score_ratio: float | None = None  # the served band's interval score over naive's band's

    def alarms(self) -> list[str]:
        out = []
        low, high = COVERAGE_RANGE
        if not low <= self.coverage_80 <= high:
            out.append(f"live 80 % band coverage {self.coverage_80:.3f} is outside {low:.2f}-{high:.2f}")
        if self.mae_ratio > 1.0:
            out.append(f"live MAE is {self.mae_ratio:.3f} x naive's: the model is worse than naive")
        return out


def live_summaries(engine: Engine, active: dict[str, ModelRecord], now: datetime, days: int = 7) -> list[LiveSummary]:
    """The active models' pooled live figures (from `model_accuracy` alone: cheap enough to poll)."""
    table = ModelAccuracy.__table__
    since = (now - timedelta(days=days)).date()
    out = []
    for tf, record in active.items():
        with engine.connect() as conn:
            daily = pd.DataFrame(conn.execute(
                sa.select(table).where(table.c.model_id == record.id, table.c.date >= since)).mappings().all())
        if daily.empty:
            continue
        pooled = combine(daily.assign(all=1), ["all"]).iloc[0]
        out.append(LiveSummary(tf, record.version, int(pooled["n"]), float(pooled["mae"]), float(pooled["naive_mae"]),
                               float(pooled["mae_ratio"]), float(pooled["directional_accuracy"]),
                               float(pooled["coverage_80"]), _or_none(pooled["interval_score_ratio"])))
    return out
