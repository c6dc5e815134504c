"""The alert scanner: a synthetic price path that crosses the target emails exactly once, one
that stays on its side never does, expired alerts are skipped, failed sends are retried at most
3 times, a scanner killed between trigger and send notifies once after restart, and two scanner
processes at once notify once. Emails go to a loopback Resend through the official client."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlmodel import select

from config import EmailSettings
from mail.sender import NO_PROVIDER, EmailNotifier
from portfolio.scanner import NOT_VERIFIED, AlertScanner, ScanReport, crossed
from storage.cache import MemoryCache
from storage.db import session_scope
from storage.schema import Alert, AlertLog, Symbol, User
from tests.conftest import START, TEST_REDIS_URL, make_world
from tests.fake_resend import FakeResend


class Path_:
    """A market whose latest price of each ticker is what the test says it is now."""

    def __init__(self) -> None:
        self.price: dict[str, float] = {}
        self.requests = 0

    def aggregates(self, ticker: str, timeframe: str, start: Any, end: Any) -> pd.DataFrame:
        self.requests += 1
        p = self.price[ticker]
        return pd.DataFrame({"timestamp": [pd.Timestamp(end)], "open": [p], "high": [p], "low": [p], "close": [p],
                             "volume": [1.0]})


@pytest.fixture(params=["sqlite", "postgresql"])
def setup(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'app.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_database_url"))
    ticks = {"t": 0.0}
    cache = MemoryCache(clock=lambda: ticks["t"])
    world = make_world(url, cache, tmp_path)
    with session_scope(world["engine"]) as s:
        user = User(email="owner@example.com", password_hash="x", tier="free", email_verified=datetime(2026, 1, 1))
        s.add(user)
    world.update(user_id=user.id, ticks=ticks, market=Path_())
    yield world
    world["engine"].dispose()


def _alert(world, condition: str, target: float, expires_at: datetime | None = None, ticker: str | None = None) -> uuid.UUID:
    with session_scope(world["engine"]) as s:
        sym = s.exec(select(Symbol).where(Symbol.ticker == (ticker or world["tickers"][0]))).one()
        alert = Alert(user_id=world["user_id"], symbol_id=sym.id, condition_type=condition, target_price=target,
                      expires_at=expires_at)
        s.add(alert)
    return alert.id


def _scanner(world, resend: FakeResend | None) -> AlertScanner:
    email = EmailSettings(api_key=resend.api_key if resend else None, api_base=resend.base if resend else None,
                          sender="alerts@example.com")
    return AlertScanner(world["engine"], world["cache"], world["market"], EmailNotifier(email), clock=lambda: world["now"])


def _scan_at(world, scanner: AlertScanner, price: float, minutes: int):
    """One scan a minute after the last: the 1-minute price cache has expired."""
    world["market"].price = {t: price for t in world["tickers"]}
    world["ticks"]["t"] += 61
    world["now"] = START + timedelta(minutes=minutes)
    return scanner.scan()


def _logs(world) -> list[AlertLog]:
    with session_scope(world["engine"]) as s:
        return s.exec(select(AlertLog)).all()


def test_conditions() -> None:
    assert crossed("above", 100, 100, None) and not crossed("above", 100, 99.9, None)
    assert crossed("below", 100, 99, None) and not crossed("below", 100, 101, 99)
    assert crossed("crossing", 100, 101, 99) and crossed("crossing", 100, 99, 101)
    assert not crossed("crossing", 100, 101, None) and not crossed("crossing", 100, 103, 101)


def test_a_path_that_crosses_emails_exactly_once(setup) -> None:
    world = setup
    alert_id = _alert(world, "crossing", 100.0)
    with FakeResend() as resend:
        scanner = _scanner(world, resend)
        reports = [_scan_at(world, scanner, p, i) for i, p in enumerate([95, 98, 103, 104, 97, 120])]
        assert [r.triggered for r in reports] == [0, 0, 1, 0, 0, 0]
        assert len(resend.delivered) == 1
        sent = resend.delivered[0]
        assert sent["to"] == ["owner@example.com"] and world["tickers"][0] in sent["subject"]
    assert [r.requests for r in reports[:3]] == [1, 1, 1]  # one market-data request per symbol and scan
    logs = _logs(world)
    assert len(logs) == 1 and logs[0].status == "sent" and logs[0].price == 103 and logs[0].previous_price == 98
    assert logs[0].channel == "email" and logs[0].provider_id == sent["id"] and logs[0].notified_at
    with session_scope(world["engine"]) as s:
        alert = s.get(Alert, alert_id)
        assert alert.triggered_at and alert.notified_at and alert.is_active is False


def test_a_path_on_one_side_and_an_expired_alert_never_trigger(setup) -> None:
    world = setup
    _alert(world, "above", 200.0)
    _alert(world, "below", 50.0)
    _alert(world, "crossing", 120.0)
    _alert(world, "above", 1.0, expires_at=START - timedelta(hours=1))
    with FakeResend() as resend:
        scanner = _scanner(world, resend)
        reports = [_scan_at(world, scanner, p, i) for i, p in enumerate([100, 110, 119, 105, 118])]
        assert sum(r.triggered for r in reports) == 0 and resend.delivered == []
    assert reports[0].expired == 1 and reports[0].alerts == 3


def test_a_failed_send_is_retried_at_most_three_times_and_never_twice(setup) -> None:
    world = setup
    _alert(world, "above", 10.0)
    with FakeResend(fail_first=2) as resend:
        scanner = _scanner(world, resend)
        reports = [_scan_at(world, scanner, 20, i) for i in range(4)]
        assert [(r.failed, r.sent) for r in reports] == [(1, 0), (1, 0), (0, 1), (0, 0)]
        assert len(resend.delivered) == 1
    _alert(world, "above", 10.0, ticker=world["tickers"][1])
    with FakeResend(fail_first=10) as resend:
        scanner = _scanner(world, resend)
        for i in range(5):
            _scan_at(world, scanner, 20, 10 + i)
        assert resend.requests == 3 and resend.delivered == []  # three attempts, then it stops
    failed = [log for log in _logs(world) if log.status == "failed"]
    assert len(failed) == 1 and failed[0].attempts == 3 and "send failed" in failed[0].detail


def test_a_scanner_killed_between_trigger_and_send_notifies_once_after_restart(setup) -> None:
    world = setup
    _alert(world, "below", 50.0)
    with FakeResend() as resend:
        crashed = _scanner(world, resend)
        world["market"].price = {t: 40.0 for t in world["tickers"]}
        world["now"] = START
        crashed.trigger(START, ScanReport())  # ... and the process dies before notify()
        assert resend.delivered == [] and [log.status for log in _logs(world)] == ["pending"]
        _scan_at(world, _scanner(world, resend), 40.0, 1)  # the restarted scanner
        _scan_at(world, _scanner(world, resend), 40.0, 2)
        assert len(resend.delivered) == 1


def test_without_a_provider_the_log_row_says_so(setup) -> None:
    world = setup
    _alert(world, "above", 1.0)
    report = _scan_at(world, _scanner(world, None), 5.0, 0)
    assert report.triggered == 1 and report.not_sent == 1
    log = _logs(world)[0]
    assert (log.channel, log.status, log.detail) == ("log", "not_sent", NO_PROVIDER)


def test_an_unverified_owner_gets_no_email(setup) -> None:
    world = setup
    with world["engine"].begin() as conn:
        conn.execute(sa.update(User).where(User.id == world["user_id"]).values(email_verified=None))
    _alert(world, "above", 1.0)
    with FakeResend() as resend:
        report = _scan_at(world, _scanner(world, resend), 5.0, 0)
        assert report.triggered == 1 and report.not_sent == 1 and resend.delivered == []
    log = _logs(world)[0]
    assert (log.status, log.detail) == ("not_sent", NOT_VERIFIED)


def test_two_scanner_processes_at_once_notify_once(pg_database_url, tmp_path) -> None:
    from storage.cache import MemoryCache as Memory

    world = make_world(pg_database_url, Memory(), tmp_path)
    with session_scope(world["engine"]) as s:
        user = User(email="two@example.com", password_hash="x", tier="free", email_verified=datetime(2026, 1, 1))
        s.add(user)
        sym = s.exec(select(Symbol).where(Symbol.ticker == world["tickers"][0])).one()
        s.add(Alert(user_id=user.id, symbol_id=sym.id, condition_type="above", target_price=1e-12))
    with FakeResend() as resend:
        env = {**os.environ, "DATABASE_URL": pg_database_url, "MARKET_SOURCE": "synthetic",
               "REDIS_URL": TEST_REDIS_URL,  # the scanners share their price cache, as in production
               "RESEND_API_KEY": resend.api_key, "RESEND_API_BASE": resend.base,
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        procs = [subprocess.Popen([sys.executable, "-m", "jobs.scan_alerts", "--once"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        outputs = [p.communicate(timeout=180)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        assert len(resend.delivered) == 1, outputs
    assert sum("1 triggered" in o for o in outputs) == 1, outputs
    world["engine"].dispose()
