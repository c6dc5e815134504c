"""Passwords a person can recover and change.

"Forgot password" answers the same whether or not the email has an account, and does the same
database work before answering; the email itself goes out after the answer. Its rate limit is
therefore per client address (`auth_requests`), never per account, which would tell. Per account,
extra requests are dropped silently: at most one reset email a minute and five a day.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from accounts import passwords
from accounts.errors import AccountError
from accounts.mailed_tokens import RESET_PASSWORD, Issued, MailedTokens
from accounts.sessions import Sessions
from accounts.throttle import RequestLimit, count_request
from clock import naive_utc
from storage.db import session_scope
from storage.schema import User

FORGOT = "forgot_password"
FORGOT_WINDOW = timedelta(minutes=15)
FORGOT_PER_CLIENT = 5  # per FORGOT_WINDOW
FORGOT_LIMIT = RequestLimit(FORGOT, FORGOT_PER_CLIENT, FORGOT_WINDOW, "password reset requests")
RESET_EVERY, RESETS_PER_DAY = timedelta(minutes=1), 5
NOBODY = uuid.UUID(int=0)


class PasswordRecovery:
    def __init__(self, engine: Engine, mailed: MailedTokens, sessions: Sessions,
                 clock: Callable[[], datetime]) -> None:
        self.engine, self.mailed, self.sessions, self.clock = engine, mailed, sessions, clock

    def forgot(self, email: str, client: str) -> Issued | None:
        """A reset link for the account of `email`, if there is one and it is not over its limits."""
        now = self.clock()
        count_request(self.engine, FORGOT_LIMIT, client, now)
        with session_scope(self.engine) as session:
            user = session.exec(select(User).where(User.email == email.strip().lower())).first()
        known = user is not None and bool(user.password_hash)
        # the same queries for an unknown address (on an id nobody has), so timing does not tell
        user_id = user.id if user is not None and known else NOBODY
        over = (self.mailed.count_since(user_id, RESET_PASSWORD, now - RESET_EVERY)
                or self.mailed.count_since(user_id, RESET_PASSWORD, now - timedelta(days=1)) >= RESETS_PER_DAY)
        if user is None or not known or over:
            return None
        return self.mailed.issue(user.id, user.email, RESET_PASSWORD)

    def _set_password(self, user_id: uuid.UUID, password: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(User).where(User.id == user_id).values(
                password_hash=passwords.hash_password(password), updated_at=naive_utc(self.clock())))

    def reset(self, token: str, password: str) -> uuid.UUID:
        """Set a new password with a mailed link; every session of the user ends, and so do the
        user's other reset links. The password is checked first, so a weak one wastes no link."""
        passwords.check_rules(password)
        user_id = self.mailed.redeem(token, RESET_PASSWORD)
        self._set_password(user_id, password)
        self.sessions.end_all(user_id)
        self.mailed.void(user_id, RESET_PASSWORD)
        return user_id

    def check(self, user_id: uuid.UUID, password: str) -> None:
        """403 unless `password` is the user's current one (before a change or a deletion)."""
        with session_scope(self.engine) as session:
            user = session.get(User, user_id)
        if user is None or not user.password_hash or not passwords.verify_password(user.password_hash, password):
            raise AccountError(403, "wrong_password", "the current password is wrong")

    def change(self, user_id: uuid.UUID, current: str, new: str, keep_token: str) -> int:
        """Change the password of a signed-in user; their other sessions end (how many)."""
        self.check(user_id, current)
        passwords.check_rules(new)
        self._set_password(user_id, new)
        return self.sessions.end_all(user_id, keep_token=keep_token)
