"""A scratch PostgreSQL database for one benchmark run: created empty and migrated, dropped after,
whatever happens in between (127.0.0.1:5432, trust auth, as on every machine of this project)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from storage.migrate import upgrade

ADMIN = "host=127.0.0.1 user=postgres dbname=test"


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """The URL of a new migrated database named `<prefix>_<random>`."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
