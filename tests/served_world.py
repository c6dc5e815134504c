"""The world the served API runs on in the serving tests: a migrated PostgreSQL database with the
synthetic universe ranked and a 1d model active (one weekly run without Ray, small sizes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from jobs import weekly_training
from storage.db import make_engine, session_scope
from storage.schema import Symbol
from tests.conftest import TEST_REDIS_URL

SERVED_FREE_QUOTA = 10


def served_world(root: Path, pg_url: str) -> dict[str, str]:
    """The settings a service is started with, after the weekly job has filled `root` and the database."""
    env = {"MARKET_SOURCE": "synthetic", "DATA_DIR": str(root / "data"), "MODEL_DIR": str(root / "models"),
           "DATABASE_URL": pg_url, "REDIS_URL": TEST_REDIS_URL,
           # these tests hammer the API anonymously from one address; quotas have their own tests
           "QUOTA_ANONYMOUS": "1000000", "QUOTA_FREE": str(SERVED_FREE_QUOTA), "EMAIL_OUTBOX": str(root / "outbox")}
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)
    try:
        weekly_training.main(["--top", "6", "--timeframes", "1d", "--no-ray", "--n-estimators", "30",
                              "--max-depth", "4", "--origins", "60", "--model", "xgboost"])
    finally:
        mp.undo()
    return env


def top_symbol(env: dict[str, str]) -> str:
    """The coin ranked first by USD volume in the world's database."""
    engine = make_engine(env["DATABASE_URL"])
    with session_scope(engine) as s:
        ticker = s.exec(select(Symbol.ticker).where(Symbol.volume_rank == 1)).one()
    engine.dispose()
    return ticker
