"""Price alerts (above, below, crossing a target), owned by their user, and their trigger logs.
The scanner that triggers them and sends the emails is not part of this module."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from clock import as_utc, naive_utc, utc_now
from config import TierLimits
from portfolio.chances import alert_chance
from portfolio.errors import PortfolioError
from portfolio.owned import owned, symbol
from storage.db import session_scope
from storage.schema import Alert, AlertLog, Symbol


@dataclass(frozen=True)
class AlertRule:
    """What a new alert watches: a symbol's price above, below or crossing a target, until when."""

    symbol: str
    condition_type: str
    target_price: float
    expires_at: datetime | None = None


@dataclass
class Alerts:
    engine: Engine
    clock: Callable[[], datetime] = utc_now  # the forecasts' time, which an alert's chance is read at

    def _view(self, session: Session, alert: Alert) -> dict[str, Any]:
        sym = session.get(Symbol, alert.symbol_id)
        return {"id": str(alert.id), "symbol": sym.ticker if sym else None, "condition_type": alert.condition_type,
                "target_price": alert.target_price, "is_active": bool(alert.is_active),
                "expires_at": as_utc(alert.expires_at), "triggered_at": as_utc(alert.triggered_at),
                "notified_at": as_utc(alert.notified_at), "created_at": as_utc(alert.created_at),
                **alert_chance(session, alert, self.clock())}

    @staticmethod
    def _check_room(session: Session, user_id: uuid.UUID, limits: TierLimits) -> None:
        active = session.exec(select(sa.func.count()).select_from(Alert)
                              .where(Alert.user_id == user_id, Alert.is_active.is_(True))).one()
        if active >= limits.active_alerts:
            raise PortfolioError(403, "limit_reached", f"your tier allows {limits.active_alerts} active alerts; "
                                                       "delete or pause one, or upgrade")

    @staticmethod
    def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
        if expires_at is not None and naive_utc(expires_at) <= naive_utc(now):
            raise PortfolioError(422, "expires_in_the_past", "expires_at must be in the future")

    def list(self, user_id: uuid.UUID) -> list[dict[str, Any]]:
        with session_scope(self.engine) as session:
            rows = session.exec(select(Alert).where(Alert.user_id == user_id).order_by(Alert.created_at)).all()
            return [self._view(session, a) for a in rows]

    def get(self, user_id: uuid.UUID, alert_id: str) -> dict[str, Any]:
        with session_scope(self.engine) as session:
            return self._view(session, owned(session, Alert, alert_id, user_id, "alert"))

    def create(self, user_id: uuid.UUID, limits: TierLimits, rule: AlertRule, now: datetime) -> dict[str, Any]:
        self._check_expiry(rule.expires_at, now)
        with session_scope(self.engine) as session:
            sym = symbol(session, rule.symbol)
            self._check_room(session, user_id, limits)
            alert = Alert(user_id=user_id, symbol_id=sym.id, condition_type=rule.condition_type,
                          target_price=rule.target_price, is_active=True,
                          expires_at=None if rule.expires_at is None else naive_utc(rule.expires_at),
                          created_at=naive_utc(now))
            session.add(alert)
            session.flush()
            return self._view(session, alert)

    def update(self, user_id: uuid.UUID, limits: TierLimits, alert_id: str, changes: dict[str, Any],
               now: datetime) -> dict[str, Any]:
        """Change target, condition, expiry or is_active; a changed alert is armed anew."""
        with session_scope(self.engine) as session:
            alert = owned(session, Alert, alert_id, user_id, "alert")
            if "expires_at" in changes:
                self._check_expiry(changes["expires_at"], now)
                alert.expires_at = None if changes["expires_at"] is None else naive_utc(changes["expires_at"])
            if changes.get("is_active") and not alert.is_active:
                self._check_room(session, user_id, limits)
            for key in ("condition_type", "target_price", "is_active"):
                if key in changes and changes[key] is not None:
                    setattr(alert, key, changes[key])
            if {"condition_type", "target_price"} & changes.keys():
                alert.triggered_at = alert.notified_at = None  # a new condition: armed again
            session.add(alert)
            session.flush()
            return self._view(session, alert)

    def delete(self, user_id: uuid.UUID, alert_id: str) -> None:
        with session_scope(self.engine) as session:
            session.delete(owned(session, Alert, alert_id, user_id, "alert"))

    def logs(self, user_id: uuid.UUID, alert_id: str) -> builtins.list[dict[str, Any]]:
        with session_scope(self.engine) as session:
            alert = owned(session, Alert, alert_id, user_id, "alert")
            rows = session.exec(select(AlertLog).where(AlertLog.alert_id == alert.id)
                                .order_by(AlertLog.triggered_at)).all()
            return [{"id": str(r.id), "triggered_at": as_utc(r.triggered_at), "price": r.price,
                     "previous_price": r.previous_price, "channel": r.channel, "status": r.status,
                     "attempts": r.attempts, "detail": r.detail, "notified_at": as_utc(r.notified_at)} for r in rows]
