"""The alert scanner: latest prices, conditions, one trigger per alert, one email per trigger.

Each scan reads the latest price of every symbol that has active alerts once (the cache key
`alert:scan:{symbol_id}`, 1 minute, then one market-data request per symbol), evaluates above /
below / crossing (crossing compares with the price the previous scan saw, kept under
`alert:previous:{symbol_id}`), and skips expired alerts. A trigger sets the alert's
`triggered_at` (and deactivates it) and writes its `alert_logs` row in one transaction, guarded
so that two scanners cannot both trigger it. Notifying comes after and is its own step:
every log still pending (or failed fewer than 3 times) is sent with the log's id as the
provider's idempotency key, then marked, so a scanner killed between trigger and send notifies
exactly once when it runs again.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from clock import naive_utc, utc_now
from config import Settings
from mail.sender import NO_PROVIDER, Email, EmailNotifier
from market_data.source import MarketDataError, MarketSource
from storage.cache import Cache
from storage.schema import Alert, AlertLog, Symbol, User

log = logging.getLogger(__name__)

NOT_VERIFIED = "not sent: the owner's email address is not verified"
SCAN_TTL_S = 60  # the document's `alert:scan:{symbol_id}`: latest prices, 1 minute
PREVIOUS_TTL_S = 3600  # the previous scan's price, for crossings, while scans keep coming
MAX_ATTEMPTS = 3
PRICE_TIMEFRAME = "1h"  # the latest price is the last 1h candle's close (the open one included)


@dataclass
class ScanReport:
    alerts: int = 0
    symbols: int = 0
    requests: int = 0
    triggered: int = 0
    expired: int = 0
    sent: int = 0
    not_sent: int = 0
    failed: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (f"[alerts] {self.alerts} active alerts on {self.symbols} symbols ({self.requests} market-data requests), "
                f"{self.triggered} triggered, {self.expired} expired; emails {self.sent} sent, {self.not_sent} not sent, "
                f"{self.failed} failed ({self.seconds:.2f}s)")


def crossed(condition: str, target: float, price: float, previous: float | None) -> bool:
    if condition == "above":
        return price >= target
    if condition == "below":
        return price <= target
    return previous is not None and (previous - target) * (price - target) <= 0 and previous != price


class AlertScanner:
    def __init__(self, engine: Engine, cache: Cache, source: MarketSource, notifier: EmailNotifier,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.engine, self.cache, self.source, self.notifier, self.clock = engine, cache, source, notifier, clock

    @classmethod
    def for_settings(cls, settings: Settings) -> AlertScanner:
        """The scanner of the configured database, cache, market source and mail provider: what
        `jobs.scan_alerts` and the Serve application's scanner deployment run."""
        from market_data.factory import make_source
        from storage.cache import make_cache
        from storage.db import make_engine

        return cls(make_engine(settings.database_url), make_cache(settings.redis_url), make_source(settings),
                   EmailNotifier(settings.email))

    def scan(self) -> ScanReport:
        started = time.perf_counter()
        report = ScanReport()
        now = self.clock()
        self.trigger(now, report)
        self.notify(now, report)
        report.seconds = time.perf_counter() - started
        return report

    # -- prices ---------------------------------------------------------------------------------
    def _price(self, symbol_id: uuid.UUID, ticker: str, now: datetime, report: ScanReport) -> tuple[float | None, float | None]:
        """(latest price, the previous scan's price) of one symbol."""
        key, previous_key = f"alert:scan:{symbol_id}", f"alert:previous:{symbol_id}"
        cached = self.cache.get(key)
        previous_raw = self.cache.get(previous_key)
        previous = json.loads(previous_raw)["price"] if previous_raw else None
        if cached is not None:
            return json.loads(cached)["price"], previous
        report.requests += 1
        try:
            candles = self.source.aggregates(ticker, PRICE_TIMEFRAME, now - timedelta(days=2), now)
        except MarketDataError as exc:
            report.problems.append(f"{ticker}: {exc}")
            return None, previous
        if candles.empty:
            return None, previous
        price = float(candles["close"].iloc[-1])
        value = json.dumps({"price": price, "at": now.isoformat()}).encode()
        self.cache.set(key, value, SCAN_TTL_S)
        self.cache.set(previous_key, value, PREVIOUS_TTL_S)
        return price, previous

    # -- triggers -------------------------------------------------------------------------------
    def trigger(self, now: datetime, report: ScanReport) -> None:
        """Fire every alert whose condition holds now (committed before anything is sent)."""
        alerts, symbols = Alert.__table__, Symbol.__table__
        with self.engine.connect() as conn:
            rows = pd.DataFrame(conn.execute(
                sa.select(alerts.c.id, alerts.c.symbol_id, alerts.c.condition_type, alerts.c.target_price,
                          alerts.c.expires_at, symbols.c.ticker)
                .join(symbols, symbols.c.id == alerts.c.symbol_id)
                .where(alerts.c.is_active.is_(True), alerts.c.triggered_at.is_(None))).mappings().all())
        if rows.empty:
            return
        expired = rows["expires_at"].notna() & (pd.to_datetime(rows["expires_at"]) <= pd.Timestamp(naive_utc(now)))
        report.expired = int(expired.sum())
        live = rows[~expired]
        report.alerts = len(live)
        fired: dict[uuid.UUID, tuple[float, float | None]] = {}
        for (symbol_id, ticker), group in live.groupby(["symbol_id", "ticker"], sort=False):
            report.symbols += 1
            price, previous = self._price(symbol_id, str(ticker), now, report)
            if price is None:
                continue
            for alert in group.itertuples(index=False):
                if crossed(alert.condition_type, float(alert.target_price), price, previous):
                    fired[alert.id] = (price, previous)
        report.triggered = self._fire(fired, now)

    def _fire(self, fired: dict[uuid.UUID, tuple[float, float | None]], now: datetime) -> int:
        """Claim the alerts (only those no other scanner claimed) and log them, in one transaction."""
        alerts, logs = Alert.__table__, AlertLog.__table__
        moment = naive_utc(now)
        claimed: list[uuid.UUID] = []
        ids = list(fired)
        try:
            with self.engine.begin() as conn:
                for start in range(0, len(ids), 1000):
                    chunk = ids[start:start + 1000]
                    claimed += [row[0] for row in conn.execute(
                        alerts.update().where(alerts.c.id.in_(chunk), alerts.c.triggered_at.is_(None))
                        .values(triggered_at=moment, is_active=False).returning(alerts.c.id))]
                if claimed:
                    conn.execute(logs.insert(), [
                        {"id": uuid.uuid4(), "alert_id": a, "triggered_at": moment, "price": fired[a][0],
                         "previous_price": fired[a][1], "channel": self.notifier.channel, "status": "pending",
                         "attempts": 0, "created_at": moment} for a in claimed])
        except IntegrityError:  # another scanner logged the same trigger first
            return 0
        return len(claimed)

    # -- notifications --------------------------------------------------------------------------
    @staticmethod
    def _email(row: Any, now: datetime) -> Email:
        verb = {"above": "rose to", "below": "fell to", "crossing": "crossed"}[row.condition_type]
        return Email(to=row.email, subject=f"{row.ticker} {verb} {row.target_price:g}",
                     text=f"Your alert on {row.ticker} ({row.condition_type} {row.target_price:g}) triggered at "
                          f"{row.price:g} ({naive_utc(now):%Y-%m-%d %H:%M} UTC).", idempotency_key=str(row.id))

    def _not_sent(self, ids: list[uuid.UUID], detail: str) -> None:
        logs = AlertLog.__table__
        with self.engine.begin() as conn:
            for start in range(0, len(ids), 1000):
                conn.execute(logs.update().where(logs.c.id.in_(ids[start:start + 1000]))
                             .values(status="not_sent", detail=detail))

    def notify(self, now: datetime, report: ScanReport) -> None:
        """Send every pending (or failed, under 3 attempts) alert log, each at most once."""
        alerts, logs, symbols, users = Alert.__table__, AlertLog.__table__, Symbol.__table__, User.__table__
        with self.engine.connect() as conn:
            pending = conn.execute(
                sa.select(logs.c.id, logs.c.alert_id, logs.c.price, logs.c.attempts, alerts.c.condition_type,
                          alerts.c.target_price, symbols.c.ticker, users.c.email, users.c.email_verified)
                .join(alerts, alerts.c.id == logs.c.alert_id).join(symbols, symbols.c.id == alerts.c.symbol_id)
                .join(users, users.c.id == alerts.c.user_id)
                .where(sa.or_(logs.c.status == "pending",
                              sa.and_(logs.c.status == "failed", logs.c.attempts < MAX_ATTEMPTS)))).all()
        unverified = [row for row in pending if row.email_verified is None]
        if unverified:  # an address nobody confirmed receives nothing from us
            self._not_sent([row.id for row in unverified], NOT_VERIFIED)
            report.not_sent += len(unverified)
            pending = [row for row in pending if row.email_verified is not None]
        if self.notifier.channel == "log" and pending:  # no provider: each goes to the log, rows in bulk
            for row in pending:
                self.notifier.send(self._email(row, now))
            self._not_sent([row.id for row in pending], NO_PROVIDER)
            report.not_sent += len(pending)
            return
        for row in pending:
            delivery = self.notifier.send(self._email(row, now))
            moment = naive_utc(self.clock())
            with self.engine.begin() as conn:
                if delivery.sent:
                    conn.execute(logs.update().where(logs.c.id == row.id).values(
                        status="sent", attempts=row.attempts + 1, provider_id=delivery.provider_id, notified_at=moment,
                        detail=None))
                    conn.execute(alerts.update().where(alerts.c.id == row.alert_id).values(notified_at=moment))
                    report.sent += 1
                elif self.notifier.channel == "log":
                    conn.execute(logs.update().where(logs.c.id == row.id).values(status="not_sent",
                                                                                  detail=delivery.detail))
                    report.not_sent += 1
                else:
                    conn.execute(logs.update().where(logs.c.id == row.id).values(
                        status="failed", attempts=row.attempts + 1, detail=delivery.detail))
                    report.failed += 1
