"""Throttles of the account routes anyone may call, counted in the database (`auth_requests`) so
that they hold across replicas and nodes: requests per client address in a window
(`count_request`: registrations, password-reset requests), and failed sign-ins with exponential
back-off (`LoginThrottle`).

Each failed sign-in is recorded twice: under the account's email (a digest, whether or not an
account has it, so an unknown address is answered exactly as a known one) and under the client's
address. Past a few free failures, each further one doubles the wait before the next try is
looked at (429 + Retry-After): the check comes before the password hash is computed, so guessing
costs the guesser time and the server no argon2 work. The address allows more free failures
than the account, since many people can share one address (a NAT, an office). A sign-in that
succeeds clears its account's failures, not the address's.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from accounts.errors import AccountError
from clock import naive_utc
from storage.schema import AuthRequest

WINDOW = timedelta(minutes=15)  # failures older than this are forgotten
MAX_WAIT = timedelta(minutes=15)
KEEP_REQUESTS = timedelta(days=1)  # counted requests older than this are deleted


@dataclass(frozen=True)
class Rule:
    kind: str  # auth_requests.kind
    free: int  # failures in WINDOW before any wait


ACCOUNT = Rule("login_failed_account", 5)
ADDRESS = Rule("login_failed_address", 20)


def wait_after(failures: int, free: int) -> timedelta:
    """How long after the last failure the next try is looked at: none for the first `free`,
    then 1 s, 2 s, 4 s, ... up to MAX_WAIT."""
    if failures < free:
        return timedelta(0)
    return min(MAX_WAIT, timedelta(seconds=2 ** min(30, failures - free)))


def account_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


class LoginThrottle:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine, self.clock = engine, clock

    def check(self, email: str, address: str) -> None:
        """429 with Retry-After while the account's or the address's back-off runs."""
        now = naive_utc(self.clock())
        longest = timedelta(0)
        with self.engine.connect() as conn:
            for rule, key in ((ACCOUNT, account_key(email)), (ADDRESS, address[:64])):
                failures, last = conn.execute(sa.select(sa.func.count(), sa.func.max(AuthRequest.created_at)).where(
                    AuthRequest.kind == rule.kind, AuthRequest.client == key,
                    AuthRequest.created_at >= now - WINDOW)).one()
                if last is not None:
                    longest = max(longest, last + wait_after(int(failures), rule.free) - now)
        if longest > timedelta(0):
            seconds = max(1, int(longest.total_seconds() + 0.999))
            raise AccountError(429, "too_many_requests", f"too many wrong passwords; try again in {seconds} s",
                               headers={"Retry-After": str(seconds)})

    def failed(self, email: str, address: str) -> None:
        now = naive_utc(self.clock())
        with self.engine.begin() as conn:
            conn.execute(sa.delete(AuthRequest).where(AuthRequest.kind.in_([ACCOUNT.kind, ADDRESS.kind]),
                                                      AuthRequest.created_at < now - WINDOW))
            conn.execute(sa.insert(AuthRequest), [
                {"id": uuid.uuid4(), "kind": ACCOUNT.kind, "client": account_key(email), "created_at": now},
                {"id": uuid.uuid4(), "kind": ADDRESS.kind, "client": address[:64], "created_at": now}])

    def succeeded(self, email: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(AuthRequest).where(AuthRequest.kind == ACCOUNT.kind,
                                                      AuthRequest.client == account_key(email)))


@dataclass(frozen=True)
class RequestLimit:
    """At most `limit` requests of `kind` (auth_requests.kind) from one client in `window`; `what`
    names them in the answer."""

    kind: str
    limit: int
    window: timedelta
    what: str


def count_request(engine: Engine, rule: RequestLimit, client: str, now: datetime) -> None:
    """Record one request of `rule.kind` from `client`; 429 (nothing recorded) when `rule.limit`
    of them came in the last `rule.window` already, whoever or whatever the request names."""
    at, kind, window = naive_utc(now), rule.kind, rule.window
    with engine.begin() as conn:
        conn.execute(sa.delete(AuthRequest).where(AuthRequest.kind == kind, AuthRequest.created_at < at - KEEP_REQUESTS))
        recent = conn.execute(sa.select(sa.func.count()).select_from(AuthRequest).where(
            AuthRequest.kind == kind, AuthRequest.client == client[:64],
            AuthRequest.created_at >= at - window)).scalar_one()
        if recent >= rule.limit:
            minutes = int(window.total_seconds() // 60)
            raise AccountError(429, "too_many_requests", f"at most {rule.limit} {rule.what} per {minutes} minutes "
                                                         "from one address; try again later",
                               headers={"Retry-After": str(int(window.total_seconds()))})
        conn.execute(sa.insert(AuthRequest).values(id=uuid.uuid4(), kind=kind, client=client[:64], created_at=at))
