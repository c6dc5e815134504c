"""The live accuracy a person can ask for: the active model of a timeframe over the last days."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from accuracy.tracker import LiveAccuracy, live_accuracy
from refusals import Refusal
from storage.registry import ModelRegistry
from storage.schema import ModelRecord

MAX_DAYS = 365


class AccuracyError(Refusal):
    """A refusal of an accuracy question (a span out of range, no active model)."""


def active_accuracy(engine: Engine, registry: ModelRegistry, timeframe: str, days: int,
                    now: datetime) -> tuple[ModelRecord, LiveAccuracy]:
    """The active model of `timeframe` and its live accuracy over the last `days`."""
    if not 1 <= days <= MAX_DAYS:
        raise AccuracyError(400, "bad_days", f"days must be between 1 and {MAX_DAYS}, got {days}")
    record = registry.active(timeframe)
    if record is None:
        raise AccuracyError(404, "no_model", f"no active {timeframe} model")
    return record, live_accuracy(engine, record, days, now)
