"""Email verification: a link mailed on registration, resent on request within limits, and
`users.email_verified` set when it is followed.

Until an address is verified the account forecasts within its free quota but buys no tier and
receives no alert email: both would act on an address nobody has shown to be theirs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from accounts.errors import AccountError
from accounts.mailed_tokens import VERIFY_EMAIL, Issued, MailedTokens
from accounts.quota import next_midnight
from clock import naive_utc
from storage.schema import User

RESEND_EVERY = timedelta(minutes=1)
RESENDS_PER_DAY = 5
NOT_VERIFIED = ("verify your email address first: follow the link we emailed you, or ask for a new one "
                "(POST /api/auth/verify/resend)")


def not_verified(action: str) -> AccountError:
    """The 403 of an action an unverified address may not take."""
    return AccountError(403, "email_not_verified", f"{action} needs a verified email address; {NOT_VERIFIED}")


class EmailVerification:
    def __init__(self, engine: Engine, mailed: MailedTokens, clock: Callable[[], datetime]) -> None:
        self.engine, self.mailed, self.clock = engine, mailed, clock

    def start(self, user_id: uuid.UUID, email: str) -> Issued:
        """The registration's link (the caller mails it)."""
        return self.mailed.issue(user_id, email, VERIFY_EMAIL)

    def resend(self, user_id: uuid.UUID, email: str, verified: bool, registered: datetime) -> Issued:
        """A new link: at most one a minute and five a day (the registration's not counted)."""
        if verified:
            raise AccountError(409, "already_verified", "your email address is already verified")
        now = self.clock()
        if self.mailed.count_since(user_id, VERIFY_EMAIL, now - RESEND_EVERY):
            raise AccountError(429, "too_many_requests", "a verification email was sent less than a minute ago; "
                                                         "check your inbox or try again in a minute",
                               headers={"Retry-After": str(int(RESEND_EVERY.total_seconds()))})
        midnight = next_midnight(now)
        day_start = midnight - timedelta(days=1)
        sent_today = self.mailed.count_since(user_id, VERIFY_EMAIL, day_start) - int(registered >= day_start)
        if sent_today >= RESENDS_PER_DAY:
            raise AccountError(429, "too_many_requests",
                               f"at most {RESENDS_PER_DAY} verification emails a day; try again after "
                               f"{midnight.isoformat()}", headers={"Retry-After": str(int((midnight - now).total_seconds()))})
        return self.mailed.issue(user_id, email, VERIFY_EMAIL)

    def confirm(self, token: str) -> uuid.UUID:
        """Follow a link: the address is verified from now on (a second link changes nothing)."""
        user_id = self.mailed.redeem(token, VERIFY_EMAIL)
        with self.engine.begin() as conn:
            conn.execute(sa.update(User).where(User.id == user_id, User.email_verified.is_(None))
                         .values(email_verified=naive_utc(self.clock()), updated_at=naive_utc(self.clock())))
        return user_id
