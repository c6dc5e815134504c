"""Register, sign in, sign out, authenticate a token, and charge the daily quota.

Typed in and out (`Account`, `SignIn`, `Usage`); the ingress maps `AccountError` to answers.
Every refusal of a credential is the same 401 whatever the reason (unknown, forged, expired,
signed out), so that a caller learns nothing about which tokens or emails exist.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from accounts import passwords, tokens
from accounts.errors import AccountError
from accounts.quota import QuotaCounter, QuotaState, Subject, next_midnight, utc_day
from billing.lifecycle import GRACE_STATUS, effective_tier
from clock import as_utc, naive_utc, utc_now
from config import AccountSettings
from storage.cache import Cache
from storage.db import session_scope
from storage.schema import Subscription, User, UserSession

log = logging.getLogger(__name__)

INVALID_SESSION = "your session is not valid or has expired; sign in again"


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    email: str
    name: str | None
    tier: str
    created_at: datetime


@dataclass(frozen=True)
class SignIn:
    token: str
    expires_at: datetime
    account: Account


@dataclass(frozen=True)
class Usage:
    date: date
    api_calls: int
    limit: int
    reset_at: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.api_calls)


@dataclass(frozen=True)
class Caller:
    """Who is calling: a signed-in account, or an anonymous client address."""

    account: Account | None
    client: str

    @property
    def subject(self) -> Subject:
        return Subject(None if self.account is None else self.account.id, self.client)

    @property
    def tier(self) -> str | None:
        return None if self.account is None else self.account.tier


def _account(user: User) -> Account:
    return Account(user.id, user.email, user.name, user.tier or "free", as_utc(user.created_at))


class AccountService:
    def __init__(self, engine: Engine, cache: Cache, settings: AccountSettings,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.quota = QuotaCounter(engine, cache)

    # -- identity -------------------------------------------------------------------------------
    def register(self, email: str, password: str, name: str | None = None) -> Account:
        passwords.check_rules(password)
        email = email.strip().lower()
        now = naive_utc(self.clock())
        user = User(email=email, name=name, password_hash=passwords.hash_password(password), tier="free",
                    created_at=now, updated_at=now)
        try:
            with session_scope(self.engine) as session:
                session.add(user)
        except IntegrityError:
            raise AccountError(409, "email_taken", f"an account with the email {email} already exists") from None
        log.info("registered user %s", user.id)
        return _account(user)

    def login(self, email: str, password: str) -> SignIn:
        email = email.strip().lower()
        with session_scope(self.engine) as session:
            user = session.exec(select(User).where(User.email == email)).first()
        if user is None or not user.password_hash:
            passwords.burn_verification(password)  # same time as a wrong password
            raise AccountError(401, "invalid_credentials", "the email or the password is wrong")
        if not passwords.verify_password(user.password_hash, password):
            raise AccountError(401, "invalid_credentials", "the email or the password is wrong")
        token = tokens.new_token()
        now = self.clock()
        expires = now + timedelta(days=self.settings.session_ttl_days)
        with session_scope(self.engine) as session:
            session.add(UserSession(user_id=user.id, session_token=tokens.digest(token), expires=naive_utc(expires),
                                    created_at=naive_utc(now)))
        log.info("user %s signed in", user.id)
        return SignIn(token, expires.replace(microsecond=0), _account(user))

    def authenticate(self, token: str) -> Account:
        """The account a token belongs to; 401 for anything else (also a malformed token)."""
        if not tokens.well_formed(token):
            raise AccountError(401, "invalid_session", INVALID_SESSION)
        now = naive_utc(self.clock())
        with session_scope(self.engine) as session:
            row = session.exec(
                select(User, Subscription.status, Subscription.current_period_end)
                .join(UserSession, UserSession.user_id == User.id)
                .outerjoin(Subscription, Subscription.user_id == User.id)
                .where(UserSession.session_token == tokens.digest(token), UserSession.expires > now)
            ).first()
        if row is None:
            raise AccountError(401, "invalid_session", INVALID_SESSION)
        user, status, period_end = row
        account = _account(user)
        if status == GRACE_STATUS:  # a failed renewal keeps the paid tier until the period ends
            account = replace(account, tier=effective_tier(account.tier, status, period_end, now))
        return account

    def logout(self, token: str) -> None:
        if not tokens.well_formed(token):
            raise AccountError(401, "invalid_session", INVALID_SESSION)
        with session_scope(self.engine) as session:
            deleted = session.execute(sa.delete(UserSession).where(
                UserSession.session_token == tokens.digest(token))).rowcount
        if not deleted:
            raise AccountError(401, "invalid_session", INVALID_SESSION)

    # -- quotas ---------------------------------------------------------------------------------
    def limit(self, caller: Caller) -> int:
        return self.settings.quota(caller.tier)

    def charge(self, caller: Caller) -> QuotaState:
        """Count one forecast call; 429 `quota_exceeded` once the day's limit is spent."""
        now = self.clock()
        state = self.quota.charge(caller.subject, now, self.limit(caller))
        if not state.allowed:
            who = "anonymous callers from your address" if caller.account is None else f"the {caller.tier} tier"
            upgrade = " Sign in for a larger quota." if caller.account is None else ""
            raise AccountError(429, "quota_exceeded",
                               f"daily forecast quota reached: {state.limit} per UTC day for {who}; it resets at "
                               f"{state.reset_at.isoformat()}.{upgrade}", headers=state.headers(now))
        return state

    def refund(self, caller: Caller) -> None:
        self.quota.refund(caller.subject, self.clock())

    def usage(self, caller: Caller) -> Usage:
        now = self.clock()
        return Usage(utc_day(now), self.quota.used(caller.subject, now), self.limit(caller), next_midnight(now))

    def headers(self, state: QuotaState) -> dict[str, str]:
        return state.headers(self.clock())
