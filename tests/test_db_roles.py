"""The service as a PostgreSQL role that cannot rewrite the public log: migrations run as the
owner (`DATABASE_MIGRATION_URL`), the service role serves forecasts, scores them and deletes
accounts, and every change to what the log hashes, or to the log's guards, is refused."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from config import load_settings
from predictions.market import MarketView
from predictions.service import ForecastAsk, PredictionService
from storage.cache import MemoryCache
from storage.db import make_engine
from storage.migrate import main as migrate_main
from storage.migrate import migration_url, upgrade
from storage.registry import ModelRegistry
from tests.conftest import flat_forecast, make_world


@pytest.fixture
def service_role(pg_database_url: str):
    """A fresh login role (roles are the whole server's: dropped after the test)."""
    role = f"cc_service_{uuid.uuid4().hex[:8]}"
    owner = make_engine(pg_database_url)
    with owner.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
    yield role, make_url(pg_database_url).set(username=role).render_as_string(hide_password=False)
    with owner.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {role}"))
        conn.execute(sa.text(f"DROP ROLE {role}"))
    owner.dispose()


REFUSED = [
    "UPDATE prediction_steps SET close = close * 2",
    "UPDATE prediction_steps SET upper = upper + 1",
    "UPDATE predictions SET created_at = created_at + interval '1 second'",
    "UPDATE models SET version = 'v-forged'",
    "UPDATE symbols SET ticker = 'X:FORGED'",
    "DELETE FROM prediction_steps",
    "UPDATE ledger_leaves SET body = body",
    "DELETE FROM ledger_tree",
    "TRUNCATE ledger_entries",
    "ALTER TABLE ledger_entries DISABLE TRIGGER USER",
    "DROP TRIGGER ledger_leaves_append_only ON ledger_leaves",
    "SET session_replication_role = replica",
]


def test_the_service_role_serves_but_cannot_rewrite_the_log(tmp_path, pg_database_url, service_role, monkeypatch,
                                                           capsys) -> None:
    role, service_url = service_role
    world = make_world(pg_database_url, MemoryCache(), tmp_path)  # migrated and seeded by the owner
    monkeypatch.setenv("DATABASE_URL", service_url)
    monkeypatch.setenv("DATABASE_MIGRATION_URL", pg_database_url)
    assert migration_url(load_settings()) == pg_database_url
    migrate_main(["--grant-service", role])
    assert f"granted {role}" in capsys.readouterr().out
    engine = make_engine(service_url)
    upgrade(service_url)  # at the newest schema already: the service role's check is a no-op
    market = MarketView(engine, MemoryCache(), world["market"], lambda tf: 20, world["clock"])
    service = PredictionService(engine, MemoryCache(), market, ModelRegistry(engine, tmp_path / "models"),
                                flat_forecast(world["model_id"]))
    answer = service.generate(ForecastAsk(world["tickers"][0], "1d"), use_cache=False)
    assert answer["ledger"]["index"] == 0
    with engine.begin() as conn:  # what the service does besides: scoring, accounts, the models' state
        conn.execute(sa.text("UPDATE prediction_steps SET actual_close = close, is_accurate = true"))
        conn.execute(sa.text("UPDATE models SET is_active = is_active"))
        conn.execute(sa.text("INSERT INTO users (id, email, password_hash, tier, created_at) VALUES "
                             "(:id, 'r@example.com', 'x', 'free', :t)"), {"id": uuid.uuid4(), "t": datetime(2026, 1, 1)})
        conn.execute(sa.text("DELETE FROM users WHERE email = 'r@example.com'"))
    for statement in REFUSED:
        with pytest.raises(sa.exc.DBAPIError, match="permission denied|must be owner|insufficient"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    engine.dispose()
