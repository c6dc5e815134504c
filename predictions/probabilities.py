"""The probabilities of events a stored forecast answers: its close above a level at a step, or
the price touching a level within some steps (`risk.events`), asked over HTTP as
`?above=X&step=h` or `?touch=X&within=h`. Here: the question, checked in the user's terms, and
the forecast's distribution read from its stored answer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
from sqlmodel import Session, col, select

from clock import naive_utc
from market_data.timeframes import spec
from predictions.errors import PredictionError
from predictions.ledger import QUANTILE_COLUMNS, QUANTILE_KEYS, stored_quantiles
from risk.events import Outlook
from risk.paths import Paths, simulate
from storage.schema import Prediction, PredictionStep


@dataclass(frozen=True)
class EventAsk:
    """One question: `above` with `step`, or `touch` with `within` (prices > 0, steps 1..30)."""

    above: float | None = None
    step: int | None = None
    touch: float | None = None
    within: int | None = None

    def check(self, steps: int) -> None:
        """Refuse a question the forecast cannot answer, naming what was wrong."""
        if (self.above is None) == (self.touch is None):
            raise PredictionError(400, "bad_question", "ask one of ?above=PRICE&step=N or ?touch=PRICE&within=N")
        level, count, count_name = ((self.above, self.step, "step") if self.above is not None
                                    else (self.touch, self.within, "within"))
        if count is None:
            raise PredictionError(400, "bad_question", f"{count_name}=N is needed with that price (1 to {steps})")
        if not 1 <= count <= steps:
            raise PredictionError(400, "bad_question", f"{count_name}={count}: this forecast has steps 1 to {steps}")
        assert level is not None
        if not (np.isfinite(level) and level > 0):
            raise PredictionError(400, "bad_question", f"the price must be a number above 0, got {level}")

    def key(self) -> str:
        """The question as text, for its cached answer."""
        if self.above is not None:
            return f"above={self.above!r}&step={self.step}"
        return f"touch={self.touch!r}&within={self.within}"


def outlook_of(answer: dict[str, Any]) -> dict[str, Any]:
    """A stored forecast's distribution as JSON data (what is cached): the last close (its first
    step's open) and each step's quantiles in QUANTILE_KEYS' order."""
    steps = answer["steps"]
    if not steps or any(s.get("quantiles") is None for s in steps):
        raise PredictionError(409, "no_distribution", f"forecast {answer['prediction_id']} was made before forecasts "
                              "carried their distribution; make a new one to ask its probabilities")
    return {"last_close": float(steps[0]["open"]),
            "table": [[float(s["quantiles"][k]) for k in QUANTILE_KEYS] for s in steps]}


def outlook(data: dict[str, Any]) -> Outlook:
    return Outlook(float(data["last_close"]), np.asarray(data["table"], dtype=np.float64))


@lru_cache(maxsize=32)
def _paths(last_close: float, table: tuple[tuple[float, ...], ...]) -> Paths:
    return simulate(np.log(np.asarray(table) / last_close))


def paths_of(found: Outlook) -> Paths:
    """A forecast's paths, kept for its next questions (a forecast never changes)."""
    return _paths(found.last_close, tuple(map(tuple, found.table.tolist())))


def probability(found: Outlook, ask: EventAsk) -> dict[str, Any]:
    """The answer: `p_above` or `p_touch`, with the question."""
    ask.check(found.steps)
    if ask.above is not None:
        assert ask.step is not None
        return {"above": ask.above, "step": ask.step, "p_above": round(found.p_above(ask.above, ask.step), 4)}
    assert ask.touch is not None and ask.within is not None
    paths = paths_of(found)
    return {"touch": ask.touch, "within": ask.within,
            "p_touch": round(found.p_touch(ask.touch, ask.within, paths), 4)}


@dataclass(frozen=True)
class LatestOutlook:
    """The newest public forecast of a symbol and timeframe that carries its distribution."""

    prediction_id: str
    made_at: datetime  # naive UTC
    outlook: Outlook

    def paths(self) -> Paths:
        return paths_of(self.outlook)


def latest_outlook(session: Session, symbol_id: uuid.UUID, timeframe: str, now: datetime) -> LatestOutlook | None:
    """The newest anonymous forecast of `symbol_id` at `timeframe` made within one candle of `now`
    (an older one starts from a close the market has left behind), if it carries a distribution."""
    since = naive_utc(now) - timedelta(hours=spec(timeframe).approx_hours)
    pred = session.exec(select(Prediction).where(Prediction.symbol_id == symbol_id, Prediction.timeframe == timeframe,
                                                 Prediction.user_id.is_(None), col(Prediction.created_at) >= since)
                        .order_by(Prediction.created_at.desc()).limit(1)).first()
    if pred is None:
        return None
    steps = session.exec(select(PredictionStep).where(PredictionStep.prediction_id == pred.id)
                         .order_by(PredictionStep.step_number)).all()
    table = [stored_quantiles(s.lower, s.upper, [getattr(s, c) for c in QUANTILE_COLUMNS]) for s in steps]
    if not steps or any(row is None for row in table):
        return None
    return LatestOutlook(str(pred.id), pred.created_at, Outlook(float(steps[0].open), np.asarray(table, dtype=np.float64)))
