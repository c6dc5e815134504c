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
from accounts.mailed_tokens import ALREADY_REGISTERED, Issued, MailedTokens
from accounts.quota import QuotaCounter, QuotaState, Subject, next_midnight, utc_day
from accounts.recovery import PasswordRecovery
from accounts.sessions import Client, Sessions, session_row
from accounts.throttle import LoginThrottle, RequestLimit, count_request
from accounts.verification import EmailVerification
from billing.lifecycle import GRACE_STATUS, effective_tier
from clock import as_utc, naive_utc, utc_now
from config import AccountSettings, EmailSettings
from mail.sender import EmailNotifier
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
    email_verified: bool = False


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

REGISTRATIONS = RequestLimit("register", 5, timedelta(hours=1), "registrations")  # each sends an email


@dataclass(frozen=True)
class Registered:
    """What a registration answers, and the email it sends after the answer (None: none now)."""

    account: Account
    mail: Issued | None


def _account(user: User) -> Account:
    return Account(user.id, user.email, user.name, user.tier or "free", as_utc(user.created_at),
                   user.email_verified is not None)


class AccountService:
    """Identity and quotas; the mailed flows (verification, recovery) and the user's sessions are
    its parts, reached as `verification`, `recovery`, `mailed` and `sessions`."""

    def __init__(self, engine: Engine, cache: Cache, settings: AccountSettings,
                 clock: Callable[[], datetime] = utc_now, mail: EmailNotifier | None = None) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.quota = QuotaCounter(engine, cache)
        notifier = mail or EmailNotifier(EmailSettings(sender="cryptocast <accounts@cryptocast.invalid>"))
        self.mailed = MailedTokens(engine, notifier, settings.public_base_url, clock)
        self.sessions = Sessions(engine, clock)
        self.throttle = LoginThrottle(engine, clock)
        self.verification = EmailVerification(engine, self.mailed, clock)
        self.recovery = PasswordRecovery(engine, self.mailed, self.sessions, clock)

    # -- identity -------------------------------------------------------------------------------
    def register(self, email: str, password: str, name: str | None = None, client: Client | None = None) -> Registered:
        """A new account and its verification email. An address that already has an account gets
        the same answer (a new id, never stored: who is registered is no one's to learn here) and
        its owner an email saying so instead, at most one an hour. At most REGISTRATIONS.limit
        an hour from one client address (each sends an email)."""
        passwords.check_rules(password)
        count_request(self.engine, REGISTRATIONS, client.address if client else "unknown", self.clock())
        email = email.strip().lower()
        now = naive_utc(self.clock())
        user = User(email=email, name=name, password_hash=passwords.hash_password(password), tier="free",
                    created_at=now, updated_at=now)
        try:
            with session_scope(self.engine) as session:
                session.add(user)
        except IntegrityError:
            answer = Account(uuid.uuid4(), email, name, "free", as_utc(now), False)
            return Registered(answer, self._tell_the_owner(email))
        log.info("registered user %s", user.id)
        return Registered(_account(user), self.verification.start(user.id, email))

    def _tell_the_owner(self, email: str) -> Issued | None:
        with session_scope(self.engine) as session:
            owner = session.exec(select(User).where(User.email == email)).first()
        if owner is None or self.mailed.count_since(owner.id, ALREADY_REGISTERED,
                                                    self.clock() - ALREADY_REGISTERED.ttl):
            return None
        log.info("a registration with the address of user %s: its owner told", owner.id)
        return self.mailed.issue(owner.id, email, ALREADY_REGISTERED)

    def login(self, email: str, password: str, client: Client | None = None) -> SignIn:
        """A new session; wrong passwords are throttled per account and per address
        (`accounts.throttle`), unknown accounts alike."""
        email = email.strip().lower()
        address = client.address if client is not None else "unknown"
        self.throttle.check(email, address)
        with session_scope(self.engine) as session:
            user = session.exec(select(User).where(User.email == email)).first()
        if user is None or not user.password_hash:
            passwords.burn_verification(password)  # same time as a wrong password
            self.throttle.failed(email, address)
            raise AccountError(401, "invalid_credentials", "the email or the password is wrong")
        if not passwords.verify_password(user.password_hash, password):
            self.throttle.failed(email, address)
            raise AccountError(401, "invalid_credentials", "the email or the password is wrong")
        self.throttle.succeeded(email)
        token = tokens.new_token()
        now = self.clock()
        expires = now + timedelta(days=self.settings.session_ttl_days)
        with session_scope(self.engine) as session:
            session.add(session_row(user.id, token, now, expires, client))
        log.info("user %s signed in", user.id)
        return SignIn(token, expires.replace(microsecond=0), _account(user))

    def authenticate(self, token: str) -> Account:
        """The account a token belongs to; 401 for anything else (also a malformed token)."""
        if not tokens.well_formed(token):
            raise AccountError(401, "invalid_session", INVALID_SESSION)
        now = naive_utc(self.clock())
        with session_scope(self.engine) as session:
            row = session.execute(
                sa.select(User, Subscription.status, Subscription.current_period_end, UserSession.id,  # type: ignore[call-overload]
                       UserSession.last_used_at)
                .join(UserSession, UserSession.user_id == User.id)
                .outerjoin(Subscription, Subscription.user_id == User.id)
                .where(UserSession.session_token == tokens.digest(token), UserSession.expires > now)
            ).first()
        if row is None:
            raise AccountError(401, "invalid_session", INVALID_SESSION)
        user, status, period_end, session_id, last_used = row
        self.sessions.touch(session_id, last_used)
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

    def close(self, user_id: uuid.UUID, password: str, cancel_subscription: Callable[[uuid.UUID], None]) -> None:
        """Delete the account: password first, then the subscription cancelled (or nothing
        deleted), then the user, whose rows cascade (sessions, tokens, watchlists, alerts, plans,
        usage, subscription). Forecasts and ledger entries stay, with no owner."""
        self.recovery.check(user_id, password)
        cancel_subscription(user_id)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(User).where(User.id == user_id))
        log.info("deleted user %s", user_id)

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
