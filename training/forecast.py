"""The forecast every kind of model answers with: typed, so that serving, storage and the API
read fields, not string keys; JSON only at the HTTP edge. Light on purpose (no model library):
the ingress imports it without loading XGBoost or torch."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

DIRECTION_NAMES = {1: "up", -1: "down", 0: "flat"}


@dataclass(frozen=True)
class ForecastStep:
    """One forecast candle: prices, the 80 % band of its close, and the direction of its close
    against the last known one with the probability that it is right."""

    step: int
    timestamp: pd.Timestamp  # the candle's open time, UTC
    open: float
    high: float
    low: float
    close: float
    lower: float
    upper: float
    confidence: float
    direction: str  # up, down or flat (no proven edge)
    # naive's 80 % band (the last close carried forward), kept to score the band against
    naive_lower: float | None = None
    naive_upper: float | None = None
    # the close's predictive distribution: its quantiles at `training.band.quantiles.LEVELS`
    # (0.1 and 0.9 are `lower` and `upper`); None for a forecast made before forecasts had one
    quantiles: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Forecast:
    """One symbol's forecast, as every kind of model answers it; serving adds which model made
    it (`model_id`, `model_version`) and turns it into JSON at the HTTP edge."""

    direction: str  # the last step's: the path's summary
    confidence_avg: float
    key_indicators: list[str]
    steps: list[ForecastStep]
    model_id: str | None = None
    model_version: str | None = None
