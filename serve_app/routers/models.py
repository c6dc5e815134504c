"""The registered models and how the active one's served forecasts fared."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from fastapi import APIRouter

from accuracy.report import active_accuracy
from accuracy.scoring import pit_histogram
from clock import as_utc
from serve_app.dependencies import Predictions
from serve_app.errors import ERRORS
from serve_app.schemas import AccuracyResponse, ModelOut, ModelsResponse, Timeframe
from storage.schema import ModelRecord

router = APIRouter(tags=["models"], responses=ERRORS)


def model_out(m: ModelRecord) -> ModelOut:
    return ModelOut(id=str(m.id), timeframe=m.timeframe, version=m.version, is_active=bool(m.is_active),
                    trained_at=as_utc(m.trained_at), training_start=as_utc(m.training_start),
                    training_end=as_utc(m.training_end), num_symbols=m.num_symbols, feature_count=m.feature_count,
                    accuracy_avg=None if m.accuracy_avg is None else float(m.accuracy_avg))


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Accuracy rows with NaN as null (a horizon with no naive error has no ratio)."""
    out = []
    for r in frame.to_dict("records"):
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        out.append({**clean, "horizon": int(clean.get("horizon") or 0), "n": int(r["n"]),
                    "pit_histogram": pit_histogram(clean)})
    return out


@router.get("/api/models", response_model=ModelsResponse)
def models(service: Predictions) -> ModelsResponse:
    return ModelsResponse(models=[model_out(m) for m in service.registry.list()])


@router.get("/api/models/{timeframe}/accuracy", response_model=AccuracyResponse)
def model_accuracy(service: Predictions, timeframe: Timeframe, days: int = 30) -> AccuracyResponse:
    """How the active model's served forecasts fared against the candles that then closed, per
    horizon, with naive on the same steps beside it and a reliability table (stated confidence
    against the observed hit rate). Filled by `python -m jobs.track_accuracy`."""
    record, live = active_accuracy(service.engine, service.registry, timeframe, days, service.clock())
    overall = _rows(live.overall)
    return AccuracyResponse.model_validate({
        "timeframe": timeframe, "model_version": record.version, "model_id": str(record.id), "days": days,
        "since": live.since, "overall": overall[0] if overall else None, "horizons": _rows(live.horizons),
        "reliability": live.reliability.to_dict("records")})
