"""The sessions a user holds, as the user sees and ends them.

What identifies a session to its owner: when it began and was last used, the client's network
(the address truncated to IPv4 /24 or IPv6 /48, enough to tell "home" from "abroad" without
keeping where a person is) and the browser's user agent. `last_used_at` is written at most once
a minute per session, so signed-in traffic does not turn every request into a write.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from accounts import tokens
from accounts.errors import AccountError
from clock import as_utc, naive_utc
from storage.db import session_scope
from storage.schema import UserSession

TOUCH_EVERY = timedelta(minutes=1)
USER_AGENT_CHARS = 255


@dataclass(frozen=True)
class Client:
    """Who opened a session: the client address and the user agent, as the request gave them."""

    address: str
    user_agent: str | None = None


@dataclass(frozen=True)
class SessionInfo:
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime
    client: str | None
    user_agent: str | None
    current: bool


def network_of(address: str) -> str | None:
    """The address's network, never the address itself; None for what is not an IP address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def session_row(user_id: uuid.UUID, token: str, now: datetime, expires: datetime, client: Client | None) -> UserSession:
    agent = None if client is None or not client.user_agent else client.user_agent[:USER_AGENT_CHARS]
    return UserSession(user_id=user_id, session_token=tokens.digest(token), expires=naive_utc(expires),
                       created_at=naive_utc(now), last_used_at=naive_utc(now),
                       client=None if client is None else network_of(client.address), user_agent=agent)


class Sessions:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine, self.clock = engine, clock

    def listed(self, user_id: uuid.UUID, current_token: str | None) -> list[SessionInfo]:
        now = naive_utc(self.clock())
        current = None if current_token is None else tokens.digest(current_token)
        with session_scope(self.engine) as session:
            rows = session.exec(select(UserSession).where(UserSession.user_id == user_id, UserSession.expires > now)
                                .order_by(sa.desc(UserSession.created_at))).all()  # type: ignore[call-overload]
        return [SessionInfo(r.id, as_utc(r.created_at), None if r.last_used_at is None else as_utc(r.last_used_at),
                            as_utc(r.expires), r.client, r.user_agent, r.session_token == current) for r in rows]

    def end(self, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """End one of the user's sessions; someone else's, or none, is the same 404."""
        with self.engine.begin() as conn:
            ended = conn.execute(sa.delete(UserSession).where(
                UserSession.id == session_id, UserSession.user_id == user_id)).rowcount
        if not ended:
            raise AccountError(404, "not_found", f"no session {session_id} among yours")

    def end_all(self, user_id: uuid.UUID, keep_token: str | None = None) -> int:
        """End every session of the user but the one `keep_token` carries; how many ended."""
        query = sa.delete(UserSession).where(UserSession.user_id == user_id)
        if keep_token is not None:
            query = query.where(UserSession.session_token != tokens.digest(keep_token))
        with self.engine.begin() as conn:
            return int(conn.execute(query).rowcount)

    def touch(self, session_id: uuid.UUID, last_used_at: datetime | None) -> None:
        now = naive_utc(self.clock())
        if last_used_at is not None and now - last_used_at < TOUCH_EVERY:
            return
        with self.engine.begin() as conn:
            conn.execute(sa.update(UserSession).where(UserSession.id == session_id)
                         .values(last_used_at=now))
