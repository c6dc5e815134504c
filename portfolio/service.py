"""The portfolio services together, with the per-tier limits they enforce."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

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
    def on(cls, engine: Engine, limits: Limits) -> Portfolio:
        return cls(Watchlists(engine), Alerts(engine), TradingPlans(engine), limits)

    def limits_of(self, tier: str) -> TierLimits:
        return self.limits.of(tier)
