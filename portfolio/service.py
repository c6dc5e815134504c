"""The portfolio services together, with the per-tier limits they enforce."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from clock import utc_now
from config import Limits, TierLimits
from portfolio.alerts import Alerts
from portfolio.plans import TradingPlans
from portfolio.watchlists import Watchlists


@dataclass
class Portfolio:
    watchlists: Watchlists
    alerts: Alerts
    plans: TradingPlans
    limits: Limits

    @classmethod
    def on(cls, engine: Engine, limits: Limits, clock: Callable[[], datetime] = utc_now) -> Portfolio:
        """`clock`: the forecasts' (a replay's time under SERVE_AS_OF), which a plan's and an alert's
        chances are read at."""
        return cls(Watchlists(engine), Alerts(engine, clock), TradingPlans(engine, clock), limits)

    def limits_of(self, tier: str) -> TierLimits:
        return self.limits.of(tier)
