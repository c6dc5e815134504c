"""The prediction flow (cache, candles, model, store), without HTTP or Ray in it.

generate: a cached prediction younger than 15 minutes is answered as is (`cached: true`);
otherwise fresh candles come from the cache or the market source (1 h TTL), the forecaster of
the timeframe runs the 30-step forecast, a row goes to `predictions` and 30 to
`prediction_steps`, and the answer is cached. Errors are `ApiError`s with the HTTP status,
code and message the API answers with.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from accuracy.tracker import live_accuracy
from market_data.source import (
    AuthenticationError,
    MarketDataError,
    MarketSource,
    RateLimited,
    UnknownTickerError,
)
from market_data.timeframes import spec
from refusals import Refusal
from serve_app.schemas import MAX_STEPS, PredictRequest
from storage.cache import (
    FRESH_CANDLES_TTL_S,
    PREDICTION_TTL_S,
    Cache,
    fresh_candles_key,
    get_frame,
    get_json,
    prediction_key,
    set_frame,
    set_json,
    user_prediction_key,
)
from storage.db import db_time, session_scope, utc_time
from storage.lake import RETENTION_DAYS
from storage.registry import ModelRegistry
from storage.schema import ModelRecord, Prediction, PredictionStep, Symbol
from training.forecast import Forecast, ForecastStep

log = logging.getLogger(__name__)
SHORT_TTL_S = 60  # how long too few candles stay cached
MAX_CANDLES = 500  # the most candles /api/candles answers

# (timeframe, candles, steps) -> the forecast, with the model that made it
ForecastFn = Callable[[str, pd.DataFrame, int], Forecast]
WindowFn = Callable[[str], int]


class ApiError(Refusal):
    """A refusal of the prediction flow (unknown symbol, market data, models)."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


class PredictionService:
    def __init__(self, engine: Engine, cache: Cache, source: MarketSource, registry: ModelRegistry,
                 forecast: ForecastFn, window: WindowFn, clock: Callable[[], datetime] = _now) -> None:
        self.engine, self.cache, self.source, self.registry = engine, cache, source, registry
        self.forecast, self.window, self.clock = forecast, window, clock

    # -- generate -----------------------------------------------------------------------------
    def generate(self, request: PredictRequest, use_cache: bool = True,
                 user_id: uuid.UUID | None = None) -> dict[str, Any]:
        """The forecast for `request`. The shared cache entry is an anonymous prediction; a
        signed-in user gets their own copy of it (their `user_id`, readable by them alone),
        cached under their own key, so that a user can always read back what they were given."""
        if request.predict_until is not None and request.num_steps is not None:
            raise ApiError(400, "bad_request", "give either predict_until or num_steps, not both")
        symbol = self._symbol(request.symbol)
        now = self.clock()
        if request.predict_until is not None and utc_time(request.predict_until) <= now:
            raise ApiError(400, "bad_predict_until",
                           f"predict_until {request.predict_until.isoformat()} is not in the future (now {now.isoformat()})")
        key = prediction_key(str(symbol.id), request.timeframe)
        if use_cache:
            cached = self._cached(key, symbol, request.timeframe, user_id)
            if cached is not None:
                steps = self._steps_for(request, [pd.Timestamp(s["timestamp"]) for s in cached["steps"]])
                return {**cached, "cached": True, "steps": cached["steps"][:steps]}
        candles = self._market_candles(symbol, request.timeframe, attach_last=True)
        needed = self.window(request.timeframe)
        if len(candles) < needed:
            raise self._too_little_history(symbol.ticker, request.timeframe, len(candles), needed)
        result = self.forecast(request.timeframe, candles.iloc[-needed:].reset_index(drop=True), MAX_STEPS)
        answer = self._persist(symbol, request.timeframe, result, now)
        set_json(self.cache, key, answer, PREDICTION_TTL_S)
        if user_id is not None:
            answer = self._own_copy(answer, symbol, request.timeframe, user_id, PREDICTION_TTL_S)
        steps = self._steps_for(request, [pd.Timestamp(s["timestamp"]) for s in answer["steps"]])
        return {**answer, "steps": answer["steps"][:steps]}

    def _cached(self, key: str, symbol: Symbol, timeframe: str, user_id: uuid.UUID | None) -> dict[str, Any] | None:
        if user_id is not None:
            own = get_json(self.cache, user_prediction_key(str(symbol.id), timeframe, str(user_id)))
            if own is not None:
                return own
        shared = get_json(self.cache, key)
        if shared is None or user_id is None:
            return shared
        left = self.cache.ttl(key)
        return self._own_copy(shared, symbol, timeframe, user_id, PREDICTION_TTL_S if left is None else left)

    def _own_copy(self, answer: dict[str, Any], symbol: Symbol, timeframe: str, user_id: uuid.UUID,
                  ttl_s: float) -> dict[str, Any]:
        """Copy a stored prediction (row and steps, in two statements) as the user's own."""
        new_id = uuid.uuid4()
        old_id = uuid.UUID(answer["prediction_id"])
        predictions, steps = Prediction.__table__, PredictionStep.__table__
        pcols = [c.name for c in predictions.columns if c.name not in ("id", "user_id")]
        scols = [c.name for c in steps.columns if c.name not in ("id", "prediction_id")]
        step_id = (sa.func.gen_random_uuid() if self.engine.dialect.name == "postgresql"
                   else sa.func.lower(sa.func.hex(sa.func.randomblob(16))))
        with self.engine.begin() as conn:
            conn.execute(predictions.insert().from_select(
                ["id", "user_id", *pcols],
                sa.select(sa.literal(new_id, sa.Uuid), sa.literal(user_id, sa.Uuid),
                          *[predictions.c[c] for c in pcols]).where(predictions.c.id == old_id)))
            conn.execute(steps.insert().from_select(
                ["id", "prediction_id", *scols],
                sa.select(step_id, sa.literal(new_id, sa.Uuid), *[steps.c[c] for c in scols])
                .where(steps.c.prediction_id == old_id)))
        own = {**answer, "prediction_id": str(new_id)}
        set_json(self.cache, user_prediction_key(str(symbol.id), timeframe, str(user_id)), own, ttl_s)
        return own

    def _steps_for(self, request: PredictRequest, stamps: list[pd.Timestamp]) -> int:
        """How many steps a request asks for; `predict_until` counts every candle up to and
        including the one that contains that moment."""
        if request.num_steps is not None:
            return request.num_steps
        if request.predict_until is None:
            return MAX_STEPS
        until = pd.Timestamp(utc_time(request.predict_until))
        count = sum(1 for s in stamps if s <= until)
        if stamps and until >= spec(request.timeframe).next_open(stamps[-1]):
            raise ApiError(400, "too_many_steps",
                           f"predict_until {until.isoformat()} is more than {MAX_STEPS} {request.timeframe} candles "
                           f"ahead (the last ends at {spec(request.timeframe).next_open(stamps[-1]).isoformat()})")
        return max(1, count)

    def _symbol(self, ticker: str) -> Symbol:
        with session_scope(self.engine) as session:
            symbol = session.exec(select(Symbol).where(Symbol.ticker == ticker)).first()
        if symbol is None:
            raise ApiError(404, "unknown_symbol", f"no symbol {ticker!r}; search with /api/symbols/search?q=")
        if not symbol.is_active:
            raise ApiError(404, "inactive_symbol", f"symbol {ticker!r} is no longer listed")
        return symbol

    def _market_candles(self, symbol: Symbol, timeframe: str, attach_last: bool) -> pd.DataFrame:
        """Fresh candles, or the API's answer to a market-data failure: 429 with Retry-After when
        rate limited, 503 otherwise (with the last prediction, marked stale, when `attach_last`)."""
        try:
            return self._fresh_candles(symbol.ticker, timeframe)
        except RateLimited as exc:
            after = str(int(math.ceil(exc.retry_after_s or 60)))
            raise ApiError(429, "rate_limited", "Too many requests to market data. Please wait a moment.",
                           headers={"Retry-After": after}) from exc
        except (MarketDataError, OSError) as exc:
            log.warning("market data for %s %s unavailable: %s", symbol.ticker, timeframe, exc)
            last = self.last_prediction(symbol, timeframe) if attach_last else None
            raise ApiError(503, "market_data_unavailable",
                           "Unable to connect to market data. Please try again in a minute"
                           + ("; the last prediction is attached, marked stale." if last else "."),
                           extra={"last_prediction": last}) from exc

    def _fresh_candles(self, ticker: str, timeframe: str) -> pd.DataFrame:
        """Closed candles at most an hour old: from the cache, or the market source (then cached).
        Too few candles are cached for a minute only, so a source that catches up is seen soon."""
        key = fresh_candles_key(ticker, timeframe)
        cached = get_frame(self.cache, key)
        if cached is not None:
            return cached
        now = pd.Timestamp(self.clock())
        tf = spec(timeframe)
        count = self.window(timeframe) + 10
        start = now - pd.Timedelta(hours=tf.approx_hours * count * 1.1 + 48)
        candles = self._closed(ticker, timeframe, start, now)
        enough = len(candles) >= self.window(timeframe)
        set_frame(self.cache, key, candles, FRESH_CANDLES_TTL_S if enough else SHORT_TTL_S)
        return candles

    def _closed(self, ticker: str, timeframe: str, start: pd.Timestamp, now: pd.Timestamp) -> pd.DataFrame:
        tf = spec(timeframe)
        try:
            candles = self.source.aggregates(ticker, timeframe, start.to_pydatetime(), now.to_pydatetime())
        except UnknownTickerError as exc:
            raise ApiError(404, "no_market_data", f"the market source has no data for {ticker}") from exc
        except AuthenticationError as exc:
            raise MarketDataError(str(exc)) from exc
        if not candles.empty:
            closes_at = candles["timestamp"].map(lambda t: tf.next_open(t))
            candles = candles[closes_at <= now].reset_index(drop=True)  # the still-open candle is not final
        return candles

    def _too_little_history(self, ticker: str, timeframe: str, have: int, needed: int) -> ApiError:
        """Say why a symbol has too few recent candles: a short history, or data that stopped."""
        now = pd.Timestamp(self.clock())
        tf = spec(timeframe)
        if have == 0:  # nothing recent: look back over the lake's whole retention for the last candle
            older = self._closed(ticker, timeframe, now - pd.Timedelta(days=RETENTION_DAYS[timeframe]), now)
            if not older.empty:
                last = pd.Timestamp(older["timestamp"].iloc[-1])
                days = (now - last).days
                return ApiError(422, "stale_market_data",
                                f"the latest {timeframe} candle of {ticker} is {last.date().isoformat()}, {days} days "
                                f"ago; a forecast needs the last {needed} candles up to now")
            return ApiError(422, "not_enough_history", f"the market source has no {timeframe} candles of {ticker}")
        return ApiError(422, "not_enough_history",
                        f"{ticker} has {have} closed {timeframe} candles up to {now.isoformat()}; a forecast needs "
                        f"{needed} (about {needed * tf.approx_hours / 24:.0f} days of history)")

    def _persist(self, symbol: Symbol, timeframe: str, result: Forecast, now: datetime) -> dict[str, Any]:
        prediction_id = uuid.uuid4()
        steps = result.steps
        with session_scope(self.engine) as session:
            session.add(Prediction(
                id=prediction_id, symbol_id=symbol.id, timeframe=timeframe, model_id=uuid.UUID(str(result.model_id)),
                prediction_date=db_time(now), predict_until=db_time(steps[-1].timestamp.to_pydatetime()),
                num_steps=len(steps), confidence_avg=Decimal(f"{result.confidence_avg:.4f}"),
                direction=result.direction, key_indicators=result.key_indicators, created_at=db_time(now),
            ))
            session.flush()
            session.add_all([PredictionStep(
                prediction_id=prediction_id, step_number=s.step, timestamp=db_time(s.timestamp.to_pydatetime()),
                open=s.open, high=s.high, low=s.low, close=s.close, lower=s.lower, upper=s.upper,
                confidence=Decimal(f"{s.confidence:.4f}"), direction=s.direction,
            ) for s in steps])
        return {
            "prediction_id": str(prediction_id), "symbol": symbol.ticker, "timeframe": timeframe,
            "model_version": result.model_version, "created_at": now.isoformat(), "cached": False, "stale": False,
            "direction": result.direction, "confidence_avg": result.confidence_avg,
            "key_indicators": result.key_indicators, "steps": [_step_json(s) for s in steps],
        }

    # -- reads ----------------------------------------------------------------------------------
    def get(self, prediction_id: str, user_id: uuid.UUID | None = None) -> dict[str, Any]:
        """A stored prediction: anonymous ones to anyone with the id, a user's to that user alone
        (to anyone else it does not exist)."""
        try:
            pid = uuid.UUID(prediction_id)
        except ValueError:
            raise ApiError(400, "bad_prediction_id", f"{prediction_id!r} is not a prediction id (a UUID)") from None
        with session_scope(self.engine) as session:
            pred = session.get(Prediction, pid)
            if pred is None or (pred.user_id is not None and pred.user_id != user_id):
                raise ApiError(404, "unknown_prediction", f"no prediction {prediction_id}")
            return self._answer(session, pred)

    def last_prediction(self, symbol: Symbol, timeframe: str) -> dict[str, Any] | None:
        with session_scope(self.engine) as session:
            pred = session.exec(select(Prediction).where(Prediction.symbol_id == symbol.id,
                                                         Prediction.timeframe == timeframe,
                                                         Prediction.user_id.is_(None))  # never a user's own
                                .order_by(Prediction.created_at.desc()).limit(1)).first()
            return None if pred is None else {**self._answer(session, pred), "stale": True}

    @staticmethod
    def _answer(session: Any, pred: Prediction) -> dict[str, Any]:
        symbol = session.get(Symbol, pred.symbol_id)
        model = session.get(ModelRecord, pred.model_id)
        steps = session.exec(select(PredictionStep).where(PredictionStep.prediction_id == pred.id)
                             .order_by(PredictionStep.step_number)).all()
        return {
            "prediction_id": str(pred.id), "symbol": symbol.ticker, "timeframe": pred.timeframe,
            "model_version": model.version, "created_at": utc_time(pred.created_at).isoformat(), "cached": True,
            "stale": False, "direction": pred.direction, "confidence_avg": float(pred.confidence_avg),
            "key_indicators": pred.key_indicators or [],
            "steps": [{"step": s.step_number, "timestamp": utc_time(s.timestamp).isoformat(), "open": s.open,
                       "high": s.high, "low": s.low, "close": s.close, "lower": s.lower, "upper": s.upper,
                       "confidence": float(s.confidence), "direction": s.direction} for s in steps],
        }

    def candles(self, ticker: str, timeframe: str, limit: int) -> dict[str, Any]:
        """The recent closed candles a forecast starts from, as the forecast reads them (the
        fresh-candle cache, else the market source)."""
        if not 1 <= limit <= MAX_CANDLES:
            raise ApiError(400, "bad_limit", f"limit must be between 1 and {MAX_CANDLES}, got {limit}")
        symbol = self._symbol(ticker)
        frame = self._market_candles(symbol, timeframe, attach_last=False)
        rows = frame.iloc[-limit:]
        return {"symbol": symbol.ticker, "timeframe": timeframe, "candles": [
            {"timestamp": pd.Timestamp(r.timestamp).isoformat(), "open": float(r.open), "high": float(r.high),
             "low": float(r.low), "close": float(r.close), "volume": float(r.volume)}
            for r in rows.itertuples(index=False)]}

    def accuracy(self, timeframe: str, days: int) -> dict[str, Any]:
        """The active model's live accuracy over the last `days`, naive beside it."""
        if not 1 <= days <= 365:
            raise ApiError(400, "bad_days", f"days must be between 1 and 365, got {days}")
        record = self.registry.active(timeframe)
        if record is None:
            raise ApiError(404, "no_model", f"no active {timeframe} model")
        live = live_accuracy(self.engine, record, days, self.clock())

        def rows(frame: pd.DataFrame, horizon: Any) -> list[dict[str, Any]]:
            out = []
            for r in frame.to_dict("records"):
                clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                out.append({**clean, "horizon": int(clean.get("horizon", horizon)), "n": int(clean["n"])})
            return out

        overall = rows(live.overall, 0)
        return {"timeframe": timeframe, "model_version": record.version, "model_id": str(record.id), "days": days,
                "since": live.since, "overall": overall[0] if overall else None,
                "horizons": rows(live.horizons, 0), "reliability": live.reliability.to_dict("records")}

    def search(self, query: str, limit: int) -> list[dict[str, Any]]:
        text = query.strip()
        if not text:
            raise ApiError(400, "bad_query", "q must not be empty")
        if not 1 <= limit <= 100:
            raise ApiError(400, "bad_limit", f"limit must be between 1 and 100, got {limit}")
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        ticker, name = sa.func.lower(Symbol.ticker), sa.func.lower(Symbol.name)
        bare = sa.func.lower(sa.func.replace(Symbol.ticker, "X:", ""))
        prefix = sa.or_(ticker.like(f"{escaped}%", escape="\\"), bare.like(f"{escaped}%", escape="\\"),
                        name.like(f"{escaped}%", escape="\\"))
        contains = sa.or_(ticker.like(f"%{escaped}%", escape="\\"), name.like(f"%{escaped}%", escape="\\"))
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(Symbol)
                .where(Symbol.is_active.is_(True), Symbol.volume_rank.is_not(None), contains)
                .order_by(sa.case((prefix, 0), else_=1), Symbol.volume_rank, Symbol.ticker)
                .limit(limit)
            ).all()
        return [{"ticker": s.ticker, "name": s.name, "base_currency": s.base_currency,
                 "quote_currency": s.quote_currency, "volume_rank": s.volume_rank} for s in rows]

    def models(self) -> list[dict[str, Any]]:
        return [{"id": str(m.id), "timeframe": m.timeframe, "version": m.version, "is_active": bool(m.is_active),
                 "trained_at": utc_time(m.trained_at).isoformat(), "training_start": utc_time(m.training_start).isoformat(),
                 "training_end": utc_time(m.training_end).isoformat(), "num_symbols": m.num_symbols,
                 "feature_count": m.feature_count,
                 "accuracy_avg": None if m.accuracy_avg is None else float(m.accuracy_avg)} for m in self.registry.list()]

    def health(self, active_versions: dict[str, str | None]) -> dict[str, Any]:
        status = "ok"
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            database = "ok"
        except Exception as exc:
            log.error("health: database unreachable: %s", exc)
            database, status = "unavailable", "degraded"
        try:
            self.cache.set("health:probe", b"1", 5)
            cache = "ok" if self.cache.get("health:probe") == b"1" else "unavailable"
        except Exception as exc:
            log.error("health: cache unreachable: %s", exc)
            cache, status = "unavailable", "degraded"
        if not any(active_versions.values()):
            status = "degraded"
        return {"status": status, "database": database, "cache": cache, "models": active_versions}


def _step_json(step: ForecastStep) -> dict[str, Any]:
    """A forecast step as the API answers it (the `steps` items of PredictionResponse)."""
    return {"step": step.step, "timestamp": step.timestamp.isoformat(), "open": step.open, "high": step.high,
            "low": step.low, "close": step.close, "lower": step.lower, "upper": step.upper,
            "confidence": step.confidence, "direction": step.direction}
