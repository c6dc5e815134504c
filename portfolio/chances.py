"""What a plan or an alert may expect, from the newest forecast of its coin: a plan's chances that
its target comes before its stop, the stop first, or neither within the forecast's steps, and how
far each level is in widths of the next candle's band; an alert's chance to trigger within the
1d forecast's steps. None where no forecast of the coin was made within its last candle."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlmodel import Session

from predictions.probabilities import LatestOutlook, latest_outlook
from storage.schema import Alert, TradingPlan
from training.band.quantiles import BAND_ROWS

ALERT_TIMEFRAME = "1d"
NO_CHANCES = {"p_target_first": None, "p_stop_first": None, "p_neither": None, "target_band_widths": None,
              "stop_band_widths": None, "forecast_id": None}


def band_widths(found: LatestOutlook, price: float) -> float:
    """log(price / last close) in widths of the next candle's 80 % band (signed: below is negative)."""
    first = found.outlook.table[0]
    width = math.log(first[BAND_ROWS[1]] / first[BAND_ROWS[0]])
    move = math.log(price / found.outlook.last_close)
    return round(move / width, 2) if width > 0 else (0.0 if move == 0 else math.copysign(math.inf, move))


def plan_chances(session: Session, plan: TradingPlan, now: datetime) -> dict[str, Any]:
    found = latest_outlook(session, plan.symbol_id, plan.timeframe, now)
    if found is None or plan.target_price is None or plan.stop_loss is None:
        return {**NO_CHANCES, "forecast_id": None if found is None else found.prediction_id}
    target, stop, neither = found.outlook.first_of(plan.target_price, plan.stop_loss, paths=found.paths())
    return {"p_target_first": round(target, 4), "p_stop_first": round(stop, 4), "p_neither": round(neither, 4),
            "target_band_widths": band_widths(found, plan.target_price),
            "stop_band_widths": band_widths(found, plan.stop_loss), "forecast_id": found.prediction_id}


def alert_chance(session: Session, alert: Alert, now: datetime) -> dict[str, Any]:
    """`p_trigger`: 1 where the condition already holds at the forecast's last close (above or
    below), else the chance that the price touches the target within the forecast's steps."""
    found = latest_outlook(session, alert.symbol_id, ALERT_TIMEFRAME, now)
    if found is None:
        return {"p_trigger": None, "forecast_id": None}
    last, target = found.outlook.last_close, alert.target_price
    holds = (alert.condition_type == "above" and last >= target) or (alert.condition_type == "below" and last <= target)
    p = 1.0 if holds else found.outlook.p_touch(target, found.outlook.steps, found.paths())
    return {"p_trigger": round(p, 4), "forecast_id": found.prediction_id}
