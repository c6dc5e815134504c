"""Single-use tokens sent by email (email verification, password reset): issued, mailed once,
redeemed once.

A token is random (`accounts.tokens`), kept only as its SHA-256, and redeemed by a conditional
UPDATE, so two requests racing with one link cannot both use it. The email's idempotency key is
the token row's id: one request is one email, however often its send is retried. Links carry
the token in the URL fragment (`/#verify=...`), which browsers never send to a server, so it
stays out of access logs and Referer headers.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from accounts import tokens
from accounts.errors import AccountError
from clock import naive_utc
from mail.sender import Email, EmailNotifier
from storage.db import session_scope
from storage.schema import AccountToken

log = logging.getLogger(__name__)

SEND_RETRIES_S = (1.0, 2.0)


@dataclass(frozen=True)
class Purpose:
    name: str  # account_tokens.purpose
    ttl: timedelta
    fragment: str  # the link's `#<fragment>=<token>`
    subject: str
    text: str  # with {link} and {minutes}


VERIFY_EMAIL = Purpose(
    "verify_email", timedelta(hours=24), "verify", "Confirm your email address for cryptocast",
    "Welcome to cryptocast.\n\nConfirm that this is your email address by opening this link within "
    "{minutes} minutes:\n\n{link}\n\nIf you did not create an account, ignore this email.\n")
RESET_PASSWORD = Purpose(
    "reset_password", timedelta(minutes=30), "reset", "Reset your cryptocast password",
    "Someone (we hope you) asked to reset the password of your cryptocast account.\n\nChoose a new "
    "password with this link within {minutes} minutes; it works once:\n\n{link}\n\nSetting a new password "
    "signs out every session of the account. If you did not ask, ignore this email: your password stays "
    "as it is.\n")

# A registration with an address that already has an account answers as a new one would (the
# answer tells no one who is registered) and tells the address's owner instead; no link: the
# token is never redeemed, its row records the email (one an hour at most).
ALREADY_REGISTERED = Purpose(
    "already_registered", timedelta(hours=1), "signin", "Someone tried to register with your email address",
    "Someone (perhaps you) tried to create a cryptocast account with this email address, which already "
    "has one.\n\nIf it was you, sign in at {base} instead, or reset your password there if you forgot it. "
    "If it was not, ignore this email: nothing about your account changed.\n")


@dataclass(frozen=True)
class Issued:
    """A token just issued, to be mailed: the only place the token itself exists."""

    id: uuid.UUID
    user_id: uuid.UUID
    email: str
    purpose: Purpose
    token: str


class MailedTokens:
    def __init__(self, engine: Engine, notifier: EmailNotifier, public_base_url: str,
                 clock: Callable[[], datetime]) -> None:
        self.engine, self.notifier, self.base, self.clock = engine, notifier, public_base_url.rstrip("/"), clock

    def issue(self, user_id: uuid.UUID, email: str, purpose: Purpose) -> Issued:
        token, now = tokens.new_token(), naive_utc(self.clock())
        row = AccountToken(user_id=user_id, purpose=purpose.name, token_hash=tokens.digest(token),
                           expires_at=now + purpose.ttl, created_at=now)
        with session_scope(self.engine) as session:
            session.add(row)
        return Issued(row.id, user_id, email, purpose, token)

    def link(self, issued: Issued) -> str:
        return f"{self.base}/#{issued.purpose.fragment}={issued.token}"

    def deliver(self, issued: Issued) -> None:
        """Send the email (idempotency key: the row, so a retry is the same email) and record how
        it went; a failed send is retried twice, after 1 s and 2 s."""
        purpose = issued.purpose
        text = purpose.text.format(link=self.link(issued), minutes=int(purpose.ttl.total_seconds() // 60),
                                   base=self.base)
        email = Email(issued.email, purpose.subject, text, f"account-token-{issued.id}")
        delivery = self.notifier.send(email)
        for pause in SEND_RETRIES_S:
            if delivery.sent or self.notifier.channel != "email":
                break
            time.sleep(pause)
            delivery = self.notifier.send(email)
        status = "sent" if delivery.sent else ("failed" if self.notifier.channel == "email" else "not_sent")
        with self.engine.begin() as conn:
            conn.execute(sa.update(AccountToken).where(AccountToken.id == issued.id)
                         .values(email_status=status, provider_id=delivery.provider_id))
        log.info("%s email for user %s: %s", purpose.name, issued.user_id, status)

    def count_since(self, user_id: uuid.UUID, purpose: Purpose, since: datetime) -> int:
        with session_scope(self.engine) as session:
            return len(session.exec(select(AccountToken.id).where(
                AccountToken.user_id == user_id, AccountToken.purpose == purpose.name,
                AccountToken.created_at >= naive_utc(since))).all())

    def redeem(self, token: str, purpose: Purpose) -> uuid.UUID:
        """The user a token was issued to, marking it used; 400 for anything else."""
        digest = tokens.digest(token) if tokens.well_formed(token) else None
        now = naive_utc(self.clock())
        with session_scope(self.engine) as session:
            row = None if digest is None else session.exec(select(AccountToken).where(
                AccountToken.token_hash == digest, AccountToken.purpose == purpose.name)).first()
        if row is None or digest is None or not hmac.compare_digest(row.token_hash, digest):
            raise AccountError(400, "invalid_token", "this link is not valid; ask for a new email")
        if row.used_at is not None:
            raise AccountError(400, "token_used", "this link has already been used; ask for a new email")
        if row.expires_at <= now:
            raise AccountError(400, "token_expired", "this link has expired; ask for a new email")
        with self.engine.begin() as conn:
            used = conn.execute(sa.update(AccountToken).where(
                AccountToken.id == row.id, AccountToken.used_at.is_(None))
                .values(used_at=now)).rowcount
        if not used:  # another request redeemed it a moment ago
            raise AccountError(400, "token_used", "this link has already been used; ask for a new email")
        return row.user_id

    def void(self, user_id: uuid.UUID, purpose: Purpose) -> None:
        """Mark every unused token of a purpose used: one reset voids the other reset links."""
        now = naive_utc(self.clock())
        with self.engine.begin() as conn:
            conn.execute(sa.update(AccountToken).where(
                AccountToken.user_id == user_id, AccountToken.purpose == purpose.name,
                AccountToken.used_at.is_(None)).values(used_at=now))
