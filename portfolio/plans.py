"""Trading plans: entry, target and stop of a trade idea, with the risk/reward the server computes.

A plan is long when its target is above its entry and short when below; its stop must then be
below (long) or above (short) the entry, and risk/reward = reward / risk = |target - entry| /
|entry - stop|, rounded to cents and capped at 999.99 (the column is NUMERIC(5, 2)).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from clock import naive_utc_now, utc_now
from config import TierLimits
from portfolio.chances import plan_chances
from portfolio.errors import PortfolioError
from portfolio.owned import owned, symbol
from storage.db import session_scope
from storage.schema import Symbol, TradingPlan

MAX_RISK_REWARD = Decimal("999.99")


def risk_reward(entry: float | None, target: float | None, stop: float | None) -> Decimal | None:
    """None until entry, target and stop are all known; 422 when they contradict each other."""
    if entry is None or target is None or stop is None:
        return None
    if target == entry:
        raise PortfolioError(422, "invalid_plan", "the target equals the entry: the plan has no direction")
    if target > entry and stop >= entry:
        raise PortfolioError(422, "invalid_plan", f"a long plan (target {target} above entry {entry}) needs its "
                                                  f"stop below the entry, not at {stop}")
    if target < entry and stop <= entry:
        raise PortfolioError(422, "invalid_plan", f"a short plan (target {target} below entry {entry}) needs its "
                                                  f"stop above the entry, not at {stop}")
    ratio = min(abs(target - entry) / abs(entry - stop), float(MAX_RISK_REWARD))  # before Decimal: never inf
    return Decimal(str(ratio)).quantize(Decimal("0.01"))


@dataclass
class TradingPlans:
    engine: Engine
    clock: Callable[[], datetime] = utc_now  # the forecasts' time, which the plan's chances are read at

    def _view(self, session: Session, plan: TradingPlan) -> dict[str, Any]:
        sym = session.get(Symbol, plan.symbol_id)
        return {"id": str(plan.id), "symbol": sym.ticker if sym else None, "title": plan.title,
                "timeframe": plan.timeframe, **plan_chances(session, plan, self.clock()),
                "entry_price": plan.entry_price, "target_price": plan.target_price, "stop_loss": plan.stop_loss,
                "risk_reward": None if plan.risk_reward is None else float(plan.risk_reward),
                "side": None if plan.entry_price is None or plan.target_price is None
                else ("long" if plan.target_price > plan.entry_price else "short"),
                "status": plan.status, "notes": plan.notes, "created_at": plan.created_at,
                "updated_at": plan.updated_at, "closed_at": plan.closed_at}

    def list(self, user_id: uuid.UUID) -> list[dict[str, Any]]:
        with session_scope(self.engine) as session:
            rows = session.exec(select(TradingPlan).where(TradingPlan.user_id == user_id)
                                .order_by(TradingPlan.created_at)).all()
            return [self._view(session, p) for p in rows]

    def get(self, user_id: uuid.UUID, plan_id: str) -> dict[str, Any]:
        with session_scope(self.engine) as session:
            return self._view(session, owned(session, TradingPlan, plan_id, user_id, "trading plan"))

    def create(self, user_id: uuid.UUID, limits: TierLimits, ticker: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A new plan, if the tier has room for one more (`limits.plans`)."""
        rr = risk_reward(fields.get("entry_price"), fields.get("target_price"), fields.get("stop_loss"))
        with session_scope(self.engine) as session:
            kept = session.exec(select(sa.func.count()).select_from(TradingPlan)
                                .where(TradingPlan.user_id == user_id)).one()
            if kept >= limits.plans:
                raise PortfolioError(403, "limit_reached", f"your tier allows {limits.plans} trading plans; "
                                                           "delete one, or upgrade")
            sym = symbol(session, ticker)
            now = naive_utc_now()
            status = fields.get("status") or "active"
            plan = TradingPlan(user_id=user_id, symbol_id=sym.id, risk_reward=rr, created_at=now, updated_at=now,
                               closed_at=now if status == "closed" else None,
                               **{k: v for k, v in fields.items() if k != "status"}, status=status)
            session.add(plan)
            session.flush()
            return self._view(session, plan)

    def update(self, user_id: uuid.UUID, plan_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        with session_scope(self.engine) as session:
            plan = owned(session, TradingPlan, plan_id, user_id, "trading plan")
            merged = {k: changes.get(k, getattr(plan, k)) for k in ("entry_price", "target_price", "stop_loss")}
            plan.risk_reward = risk_reward(merged["entry_price"], merged["target_price"], merged["stop_loss"])
            for key, value in changes.items():
                setattr(plan, key, value)
            if "status" in changes:
                plan.closed_at = (plan.closed_at or naive_utc_now()) if plan.status == "closed" else None
            plan.updated_at = naive_utc_now()
            session.add(plan)
            session.flush()
            return self._view(session, plan)

    def delete(self, user_id: uuid.UUID, plan_id: str) -> None:
        with session_scope(self.engine) as session:
            session.delete(owned(session, TradingPlan, plan_id, user_id, "trading plan"))
