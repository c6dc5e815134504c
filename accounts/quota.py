"""Daily forecast quotas, counted in the database so that every replica and node agrees.

One statement counts a call: an upsert on the (subject, UTC day) row that increments only while
the count is below the limit, returning the new count (no row back means the limit is reached).
It is atomic on PostgreSQL and SQLite alike, so concurrent calls at several ingress replicas can
never pass the limit together. Users are counted in `usage_tracking`, anonymous callers per
client address (hashed) in `anonymous_usage`; a user's count is mirrored to the cache key
`user:quota:{user_id}:{date}` for cheap reads by `/api/me`.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from storage.cache import USER_QUOTA_TTL_S, Cache, user_quota_key
from storage.db import make_engine
from storage.schema import AnonymousUsage, UsageTracking


@dataclass(frozen=True)
class Subject:
    """Whom a call is counted against: a user, or an anonymous client address."""

    user_id: uuid.UUID | None
    client: str

    @property
    def client_hash(self) -> str:
        return hashlib.sha256(self.client.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class QuotaState:
    limit: int
    used: int
    allowed: bool
    reset_at: datetime  # the next UTC midnight

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def headers(self, now: datetime) -> dict[str, str]:
        """X-RateLimit-* on every counted answer; Retry-After too once the quota is spent."""
        headers = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                   "X-RateLimit-Reset": str(int(self.reset_at.timestamp()))}
        if not self.allowed:
            headers["Retry-After"] = str(max(1, int((self.reset_at - now).total_seconds() + 0.999)))
        return headers


def next_midnight(now: datetime) -> datetime:
    return datetime.combine(utc_day(now) + timedelta(days=1), time(0), tzinfo=timezone.utc)


def utc_day(now: datetime) -> date:
    return now.astimezone(timezone.utc).date()


class QuotaCounter:
    def __init__(self, engine: Engine, cache: Cache) -> None:
        # its own engine: autocommit (one round trip per count) and, on PostgreSQL, no wait for
        # the WAL flush (a crash may forget the last counts; it never double-counts)
        self.engine = make_engine(engine.url, durable=False).execution_options(isolation_level="AUTOCOMMIT")
        self.cache = cache

    def _table(self, subject: Subject) -> tuple[sa.Table, sa.Column, object]:
        if subject.user_id is not None:
            table = UsageTracking.__table__
            return table, table.c.user_id, subject.user_id
        table = AnonymousUsage.__table__
        return table, table.c.client_hash, subject.client_hash

    def charge(self, subject: Subject, now: datetime, limit: int) -> QuotaState:
        """Count one call if the limit allows it; the state says whether it did."""
        day = utc_day(now)
        if limit <= 0:
            return QuotaState(limit, 0, False, next_midnight(now))
        table, key, value = self._table(subject)
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        row_values = insert(table).values(id=uuid.uuid4(), **{key.name: value}, date=day, api_calls=1, limit=limit)
        stmt = row_values.on_conflict_do_update(
            index_elements=[key.name, "date"],
            set_={"api_calls": table.c.api_calls + 1, "limit": row_values.excluded.limit},
            where=table.c.api_calls < row_values.excluded.limit,
        ).returning(table.c.api_calls)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        used = limit if row is None else int(row[0])
        if subject.user_id is not None:
            self.cache.set(user_quota_key(str(subject.user_id), day.isoformat()), str(used).encode(), USER_QUOTA_TTL_S)
        return QuotaState(limit, used, row is not None, next_midnight(now))

    def refund(self, subject: Subject, now: datetime) -> None:
        """Give back a counted call that we failed to answer (our error, not the caller's)."""
        day = utc_day(now)
        table, key, value = self._table(subject)
        with self.engine.connect() as conn:
            conn.execute(sa.update(table).where(key == value, table.c.date == day, table.c.api_calls > 0)
                         .values(api_calls=table.c.api_calls - 1))
        if subject.user_id is not None:
            self.cache.delete(user_quota_key(str(subject.user_id), day.isoformat()))

    def used(self, subject: Subject, now: datetime) -> int:
        """Today's count: the cache's mirror when it has one, else the database."""
        day = utc_day(now)
        if subject.user_id is not None:
            raw = self.cache.get(user_quota_key(str(subject.user_id), day.isoformat()))
            if raw is not None:
                return int(raw)
        table, key, value = self._table(subject)
        with self.engine.connect() as conn:
            count = conn.execute(sa.select(table.c.api_calls).where(key == value, table.c.date == day)).scalar()
        return int(count or 0)

    def dispose(self) -> None:
        self.engine.dispose()
