"""Forecasts: generate (from the 15-minute cache when fresh), compute anew, read back.

Forecast calls are charged to the caller's daily quota before they run and given back if they
fail."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Response

from accounts.service import AccountService, Caller
from predictions.probabilities import EventAsk
from predictions.service import ForecastAsk, PredictionService
from serve_app.dependencies import Accounts, CallerDep, MetricsDep, Predictions
from serve_app.errors import ERRORS
from serve_app.metrics import Metrics
from serve_app.schemas import PredictionResponse, PredictRequest, ProbabilityQuestion, ProbabilityResponse

router = APIRouter(tags=["predictions"], responses=ERRORS)


def _forecast(service: PredictionService, accounts: AccountService, metrics: Metrics, who: Caller,
              body: PredictRequest, use_cache: bool) -> tuple[PredictionResponse, dict[str, str]]:
    """The forecast and the quota headers that go with it."""
    quota = accounts.charge(who)
    started = time.perf_counter()
    ask = ForecastAsk(body.symbol, body.timeframe, body.predict_until, body.num_steps)
    try:
        answer = service.generate(ask, use_cache=use_cache, user_id=None if who.account is None else who.account.id)
    except BaseException:
        accounts.refund(who)  # no forecast given, nothing counted
        raise
    metrics.cache(answer["cached"])
    if not answer["cached"]:
        metrics.forecast((time.perf_counter() - started) * 1000)
    return PredictionResponse.model_validate(answer), accounts.headers(quota)


@router.post("/api/predictions/generate", response_model=PredictionResponse)
def generate_prediction(service: Predictions, accounts: Accounts, metrics: MetricsDep, who: CallerDep,
                        response: Response, body: PredictRequest) -> PredictionResponse:
    """A 30-step forecast (or fewer: `num_steps`, `predict_until`), from the 15-minute cache when fresh.
    Counts against the caller's daily quota (X-RateLimit-* headers; 429 `quota_exceeded` beyond it)."""
    answer, headers = _forecast(service, accounts, metrics, who, body, use_cache=True)
    response.headers.update(headers)
    return answer


@router.post("/ml/predict", response_model=PredictionResponse)
def ml_predict(service: Predictions, accounts: Accounts, metrics: MetricsDep, who: CallerDep,
               response: Response, body: PredictRequest) -> PredictionResponse:
    """The same forecast, always computed anew (skips the prediction cache); counted like generate."""
    answer, headers = _forecast(service, accounts, metrics, who, body, use_cache=False)
    response.headers.update(headers)
    return answer


@router.get("/api/predictions/{prediction_id}", response_model=PredictionResponse)
def get_prediction(service: Predictions, who: CallerDep, prediction_id: str) -> PredictionResponse:
    """A stored prediction; a signed-in user's predictions are visible to that user alone."""
    return PredictionResponse.model_validate(service.get(prediction_id, None if who.account is None else who.account.id))


@router.get("/api/predictions/{prediction_id}/probability", response_model=ProbabilityResponse)
def prediction_probability(service: Predictions, who: CallerDep, prediction_id: str,
                           question: Annotated[ProbabilityQuestion, Query()]) -> ProbabilityResponse:
    """The chance of an event under a stored forecast's distribution: `?above=X&step=h` (the close of
    step h above X) or `?touch=X&within=h` (the price at X at any moment of the first h steps).
    Visible to whoever may read the forecast; not counted against the quota (the forecast was)."""
    ask = EventAsk(above=question.above, step=question.step, touch=question.touch, within=question.within)
    return ProbabilityResponse.model_validate(
        service.probability(prediction_id, ask, None if who.account is None else who.account.id))
