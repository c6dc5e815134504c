"""The prediction flow (cache, candles, model, store), without HTTP or Ray in it.

generate: a cached prediction younger than 15 minutes is answered as is (`cached: true`);
otherwise fresh candles come from the cache or the market source (1 h TTL), the forecaster of
the timeframe runs the 30-step forecast, a row goes to `predictions` and 30 to
`prediction_steps`, and the answer is cached. Errors are `PredictionError`s with the HTTP
status, code and message the API answers with.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from clock import as_utc, naive_utc
from market_data.timeframes import HORIZON, spec
from predictions import ledger
from predictions.errors import MarketUnavailable, PredictionError
from predictions.market import MarketView
from predictions.probabilities import EventAsk, outlook, outlook_of, probability
from storage.cache import (
    PREDICTION_TTL_S,
    Cache,
    get_json,
    prediction_key,
    prediction_outlook_key,
    prediction_probability_key,
    set_json,
    user_prediction_key,
)
from storage.db import session_scope
from storage.registry import ModelRegistry
from storage.schema import ModelRecord, Prediction, PredictionStep, Symbol
from training.forecast import Forecast, ForecastStep

log = logging.getLogger(__name__)
MAX_STEPS = HORIZON

# (timeframe, candles, steps) -> the forecast, with the model that made it
ForecastFn = Callable[[str, pd.DataFrame, int], Forecast]


@dataclass(frozen=True)
class ForecastAsk:
    """What a caller asks for: a symbol and timeframe, and how far (a moment, or a number of steps)."""

    symbol: str
    timeframe: str
    predict_until: datetime | None = None
    num_steps: int | None = None


class PredictionService:
    def __init__(self, engine: Engine, cache: Cache, market: MarketView, registry: ModelRegistry,
                 forecast: ForecastFn, in_log: bool = True) -> None:
        """`in_log` off: a replay of the past (SERVE_AS_OF), whose forecasts the public log never holds."""
        self.engine, self.cache, self.market, self.registry, self.forecast = engine, cache, market, registry, forecast
        self.in_log = in_log
        self.window, self.clock = market.window, market.clock

    # -- generate -----------------------------------------------------------------------------
    def generate(self, request: ForecastAsk, use_cache: bool = True,
                 user_id: uuid.UUID | None = None) -> dict[str, Any]:
        """The forecast for `request`. The shared cache entry is an anonymous prediction; a
        signed-in user gets their own copy of it (their `user_id`, readable by them alone),
        cached under their own key, so that a user can always read back what they were given."""
        if request.predict_until is not None and request.num_steps is not None:
            raise PredictionError(400, "bad_request", "give either predict_until or num_steps, not both")
        symbol = self.market.symbol(request.symbol)
        now = self.clock()
        if request.predict_until is not None and as_utc(request.predict_until) <= now:
            raise PredictionError(400, "bad_predict_until",
                           f"predict_until {request.predict_until.isoformat()} is not in the future (now {now.isoformat()})")
        key = prediction_key(str(symbol.id), request.timeframe)
        if use_cache:
            cached = self._cached(key, symbol, request.timeframe, user_id)
            if cached is not None:
                steps = self._steps_for(request, [pd.Timestamp(s["timestamp"]) for s in cached["steps"]])
                return {**cached, "cached": True, "steps": cached["steps"][:steps]}
        try:
            candles = self.market.candles(symbol, request.timeframe)
        except MarketUnavailable as exc:
            raise exc.with_last(self.last_prediction(symbol, request.timeframe)) from exc
        needed = self.window(request.timeframe)
        if len(candles) < needed:
            raise self.market.too_little_history(symbol.ticker, request.timeframe, len(candles), needed)
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

    def _steps_for(self, request: ForecastAsk, stamps: list[pd.Timestamp]) -> int:
        """How many steps a request asks for; `predict_until` counts every candle up to and
        including the one that contains that moment."""
        if request.num_steps is not None:
            return request.num_steps
        if request.predict_until is None:
            return MAX_STEPS
        until = pd.Timestamp(as_utc(request.predict_until))
        count = sum(1 for s in stamps if s <= until)
        if stamps and until >= spec(request.timeframe).next_open(stamps[-1]):
            raise PredictionError(400, "too_many_steps",
                           f"predict_until {until.isoformat()} is more than {MAX_STEPS} {request.timeframe} candles "
                           f"ahead (the last ends at {spec(request.timeframe).next_open(stamps[-1]).isoformat()})")
        return max(1, count)

    def _persist(self, symbol: Symbol, timeframe: str, result: Forecast, now: datetime) -> dict[str, Any]:
        """Store the forecast and, unless this service replays the past (`in_log` off: SERVE_AS_OF),
        enter it in the public log in the same transaction: the log's lock is taken first, so the
        rows name their entry and made_at never goes back past the last entry's."""
        prediction_id = uuid.uuid4()
        steps = result.steps
        stamps = [naive_utc(s.timestamp.to_pydatetime()) for s in steps]  # as stored, and as the ledger hashes them
        with session_scope(self.engine) as session:
            tip = ledger.reserve(session.connection()) if self.in_log else None
            made_at = naive_utc(now) if tip is None else tip.made_at_for(now)
            session.add(Prediction(
                id=prediction_id, symbol_id=symbol.id, timeframe=timeframe, model_id=uuid.UUID(str(result.model_id)),
                prediction_date=made_at, predict_until=stamps[-1],
                num_steps=len(steps), confidence_avg=Decimal(f"{result.confidence_avg:.4f}"),
                direction=result.direction, key_indicators=result.key_indicators, created_at=made_at,
                ledger_seq=None if tip is None else tip.seq,
            ))
            session.flush()
            session.add_all([PredictionStep(
                prediction_id=prediction_id, step_number=s.step, timestamp=stamp,
                open=s.open, high=s.high, low=s.low, close=s.close, lower=s.lower, upper=s.upper,
                naive_lower=s.naive_lower, naive_upper=s.naive_upper,
                confidence=Decimal(f"{s.confidence:.4f}"), direction=s.direction, **_quantile_columns(s),
            ) for s, stamp in zip(steps, stamps)])
            session.flush()
            log_ref = None
            if tip is not None:  # the track record: entered with the forecast, in the same transaction
                entry = ledger.enter(session.connection(), tip, ledger.Record(
                    0, prediction_id, symbol.ticker, timeframe, result.model_version, made_at,
                    tuple(ledger.Step(s.step, stamp, s.close, s.lower, s.upper, _entered_quantiles(s))
                          for s, stamp in zip(steps, stamps))))
                log_ref = ledger.reference(session.connection(), tip.seq, entry.leaf_hash)
        return {
            "prediction_id": str(prediction_id), "symbol": symbol.ticker, "timeframe": timeframe,
            "model_version": result.model_version, "created_at": as_utc(made_at).isoformat(), "cached": False,
            "stale": False, "direction": result.direction, "confidence_avg": result.confidence_avg,
            "key_indicators": result.key_indicators, "steps": [_step_json(s) for s in steps],
            "ledger": log_ref, "replay": not self.in_log,
        }

    # -- reads ----------------------------------------------------------------------------------
    def get(self, prediction_id: str, user_id: uuid.UUID | None = None) -> dict[str, Any]:
        """A stored prediction: anonymous ones to anyone with the id, a user's to that user alone
        (to anyone else it does not exist)."""
        try:
            pid = uuid.UUID(prediction_id)
        except ValueError:
            raise PredictionError(400, "bad_prediction_id", f"{prediction_id!r} is not a prediction id (a UUID)") from None
        with session_scope(self.engine) as session:
            pred = session.get(Prediction, pid)
            if pred is None or (pred.user_id is not None and pred.user_id != user_id):
                raise PredictionError(404, "unknown_prediction", f"no prediction {prediction_id}")
            return self._answer(session, pred)

    def probability(self, prediction_id: str, ask: EventAsk, user_id: uuid.UUID | None = None) -> dict[str, Any]:
        """The chance of an event under a stored prediction's distribution (`predictions.probabilities`),
        to whoever may read the prediction; the distribution and the answer are cached with it."""
        owner = "anonymous" if user_id is None else str(user_id)
        key = prediction_probability_key(prediction_id, owner, ask.key())
        answer = get_json(self.cache, key)
        if answer is not None:
            return dict(answer)
        found_key = prediction_outlook_key(prediction_id, owner)
        found = get_json(self.cache, found_key)
        if found is None:
            found = outlook_of(self.get(prediction_id, user_id))
            set_json(self.cache, found_key, found, PREDICTION_TTL_S)
        answer = {"prediction_id": prediction_id, **probability(outlook(found), ask)}
        set_json(self.cache, key, answer, PREDICTION_TTL_S)
        return answer

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
        log_ref = None if pred.ledger_seq is None else ledger.reference(session.connection(), pred.ledger_seq)
        return {
            "prediction_id": str(pred.id), "symbol": symbol.ticker, "timeframe": pred.timeframe,
            "model_version": model.version, "created_at": as_utc(pred.created_at).isoformat(), "cached": True,
            "stale": False, "direction": pred.direction, "confidence_avg": float(pred.confidence_avg),
            "key_indicators": pred.key_indicators or [], "ledger": log_ref, "replay": False,
            "steps": [{"step": s.step_number, "timestamp": as_utc(s.timestamp).isoformat(), "open": s.open,
                       "high": s.high, "low": s.low, "close": s.close, "lower": s.lower, "upper": s.upper,
                       "confidence": float(s.confidence), "direction": s.direction,
                       "quantiles": _quantiles_json(ledger.stored_quantiles(
                           s.lower, s.upper, [getattr(s, c) for c in ledger.QUANTILE_COLUMNS]))} for s in steps],
        }


def _step_json(step: ForecastStep) -> dict[str, Any]:
    """A forecast step as the API answers it (the `steps` items of PredictionResponse)."""
    return {"step": step.step, "timestamp": step.timestamp.isoformat(), "open": step.open, "high": step.high,
            "low": step.low, "close": step.close, "lower": step.lower, "upper": step.upper,
            "confidence": step.confidence, "direction": step.direction,
            "quantiles": _quantiles_json(_entered_quantiles(step))}


def _entered_quantiles(step: ForecastStep) -> tuple[float, ...] | None:
    """The step's quantiles as stored and entered in the log: the 10 and 90 % ones are its band's
    ends, read from `lower` and `upper` (one value, not two that could differ)."""
    if step.quantiles is None or step.lower is None or step.upper is None:
        return None
    return ledger.stored_quantiles(step.lower, step.upper, ledger.quantile_rest(step.quantiles))


def _quantile_columns(step: ForecastStep) -> dict[str, float | None]:
    q = step.quantiles
    return dict(zip(ledger.QUANTILE_COLUMNS, (None,) * len(ledger.QUANTILE_COLUMNS) if q is None
                    else ledger.quantile_rest(q)))


def _quantiles_json(values: tuple[float, ...] | None) -> dict[str, float] | None:
    return None if values is None else dict(zip(ledger.QUANTILE_KEYS, values))
