"""Engines and sessions for the metadata database (SQLite embedded, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    # SQLite ignores ON DELETE CASCADE unless every connection asks for it.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    # Write-ahead logging: readers never wait for the writer, which several Serve replicas
    # sharing one file need; with synchronous=NORMAL a commit is a write, not an fsync (a power
    # cut may lose the last commits, never corrupt the file). Asked by the counters' engine
    # (durable=False); WAL then holds for the whole file, synchronous=NORMAL for their connections.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(database_url: str | sa.engine.URL, durable: bool = True) -> Engine:
    """An engine for `database_url`; creates the parent folder of a SQLite file.

    `durable=False` (PostgreSQL) commits without waiting for the WAL flush: for counters whose
    last few hundred milliseconds may be lost in a server crash but must stay cheap and atomic.
    """
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        if not durable and url.database and url.database != ":memory:":
            sa.event.listen(engine, "connect", _sqlite_wal)
        return engine
    if not durable:
        return sa.create_engine(url, pool_pre_ping=True, connect_args={"options": "-c synchronous_commit=off"})
    return sa.create_engine(url, pool_pre_ping=True)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: committed when the block ends, rolled back if it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def database_or_exit(database_url: str) -> None:
    """Entry points call this first: a database that cannot be reached (a name that does not
    exist, a server that is down) ends the program with one line, not a driver traceback."""
    from config import mask_url

    engine = make_engine(database_url)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        reason = " ".join(str(exc.orig or exc).split())[:300]
        raise SystemExit(f"database error: cannot connect to DATABASE_URL={mask_url(database_url)!r}: {reason}") from None
    finally:
        engine.dispose()
