"""The HTTP API (FastAPI): routes, error bodies and one structured log line per request.

The same app runs behind Ray Serve's ingress (`serve_app.deployments`) and, for tests and the
benchmark's baseline, on its own (`create_app(service)`). Routes find the prediction service on
`app.state.service`, which whoever hosts the app sets.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from serve_app.active_models import NoActiveModel
from serve_app.metrics import Metrics
from serve_app.schemas import (
    ErrorResponse, HealthResponse, ModelsResponse, PredictionResponse, PredictRequest, SearchResponse,
)
from serve_app.service import ApiError, PredictionService

log = logging.getLogger("serve_app.requests")

ERRORS = {400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}, 422: {"model": ErrorResponse},
          429: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
           extra: dict[str, Any] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message}, **{k: v for k, v in (extra or {}).items() if v is not None}}
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(service: PredictionService | None = None, metrics: Metrics | None = None) -> FastAPI:
    app = FastAPI(title="cryptocast", version="0.1.0",
                  description="30-step crypto forecasts (OHLC, 80 % band, calibrated confidence) from one model per timeframe")
    app.state.service = service
    app.state.metrics = metrics or Metrics()

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers, exc.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {err.get('msg')}")
        malformed = any(err.get("type") == "json_invalid" for err in exc.errors())
        return _error(400 if malformed else 422, "malformed_json" if malformed else "invalid_request",
                      "; ".join(problems) or "invalid request")

    @app.exception_handler(NoActiveModel)
    async def no_model(_: Request, exc: NoActiveModel) -> JSONResponse:
        return _error(503, "no_model", str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "server_error", "Server error. Please try again.")

    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        ms = (time.perf_counter() - started) * 1000
        app.state.metrics.request(request.url.path, response.status_code, ms)
        log.info(json.dumps({"method": request.method, "path": request.url.path, "status": response.status_code,
                             "ms": round(ms, 1)}))
        return response

    def svc(request: Request) -> PredictionService:
        return request.app.state.service

    def generate(request: Request, body: PredictRequest, use_cache: bool) -> dict[str, Any]:
        started = time.perf_counter()
        answer = svc(request).generate(body, use_cache=use_cache)
        m = request.app.state.metrics
        m.cache(answer["cached"])
        if not answer["cached"]:
            m.forecast((time.perf_counter() - started) * 1000)
        return answer

    @app.post("/api/predictions/generate", response_model=PredictionResponse, responses=ERRORS)
    def generate_prediction(request: Request, body: PredictRequest) -> dict[str, Any]:
        """A 30-step forecast (or fewer: `num_steps`, `predict_until`), from the 15-minute cache when fresh."""
        return generate(request, body, use_cache=True)

    @app.post("/ml/predict", response_model=PredictionResponse, responses=ERRORS)
    def ml_predict(request: Request, body: PredictRequest) -> dict[str, Any]:
        """The same forecast, always computed anew (skips the prediction cache)."""
        return generate(request, body, use_cache=False)

    @app.get("/api/predictions/{prediction_id}", response_model=PredictionResponse, responses=ERRORS)
    def get_prediction(request: Request, prediction_id: str) -> dict[str, Any]:
        return svc(request).get(prediction_id)

    @app.get("/api/symbols/search", response_model=SearchResponse, responses=ERRORS)
    def search(request: Request, q: str = Query(..., max_length=50), limit: int = 10) -> dict[str, Any]:
        return {"query": q, "results": svc(request).search(q, limit)}

    @app.get("/api/models", response_model=ModelsResponse)
    def models(request: Request) -> dict[str, Any]:
        return {"models": svc(request).models()}

    @app.get("/api/health", response_model=HealthResponse)
    def health(request: Request) -> dict[str, Any]:
        return svc(request).health(request.app.state.versions())

    app.state.versions = lambda: {}
    return app
