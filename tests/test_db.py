"""The Phase I schema on SQLite and PostgreSQL: migrations and the document's constraints."""

import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, select

from storage.db import make_engine, session_scope
from storage.migrate import upgrade
from storage.schema import ModelRecord, Prediction, PredictionStep, Symbol

NOW = datetime(2024, 12, 31)


def _model(timeframe: str = "1d", version: str = "v1.0", active: bool = False) -> ModelRecord:
    return ModelRecord(
        timeframe=timeframe, version=version, training_start=NOW, training_end=NOW, num_symbols=2,
        top_symbols=["X:BTCUSD", "X:ETHUSD"], model_path=f"/m/{timeframe}/{version}", is_active=active, trained_at=NOW,
    )


def test_migration_matches_the_models_and_is_idempotent(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # the second run is a no-op
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        tables = set(sa.inspect(conn).get_table_names())
        indexes = {i["name"] for t in ("symbols", "models", "predictions", "prediction_steps", "users", "sessions",
                                       "usage_tracking", "anonymous_usage")
                   for i in sa.inspect(conn).get_indexes(t)}
        user_fks = [fk for fk in sa.inspect(conn).get_foreign_keys("predictions") if fk["referred_table"] == "users"]
    engine.dispose()
    assert diff == [], diff
    assert {"symbols", "predictions", "prediction_steps", "models"} <= tables
    assert {"idx_symbols_ticker", "idx_symbols_volume_rank", "idx_symbols_active", "idx_models_timeframe",
            "idx_models_active", "idx_predictions_symbol_id", "idx_predictions_user_id",
            "idx_predictions_timeframe", "idx_predictions_model_id", "idx_predictions_created_at",
            "idx_prediction_steps_prediction_id", "idx_prediction_steps_timestamp", "idx_users_email",
            "idx_users_tier", "idx_sessions_user_id", "idx_sessions_token", "idx_usage_tracking_user_id",
            "idx_usage_tracking_date", "idx_anonymous_usage_date"} <= indexes
    assert {"users", "sessions", "usage_tracking", "anonymous_usage"} <= tables
    assert [(fk["constrained_columns"], fk["options"].get("ondelete")) for fk in user_fks] == [(["user_id"], "SET NULL")]


def test_defaults(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO symbols (id, ticker, name) VALUES (:id, 'X:BTCUSD', 'Bitcoin')"),
                     {"id": uuid.uuid4().hex if engine.dialect.name == "sqlite" else str(uuid.uuid4())})
    with session_scope(engine) as s:
        sym = s.exec(select(Symbol)).one()
        assert sym.is_active is True and sym.created_at is not None
        m = _model()
        s.add(m)
    with session_scope(engine) as s:
        assert s.get(ModelRecord, m.id).is_active is False


def test_postgres_generates_uuid_ids(pg_database_url: str) -> None:
    upgrade(pg_database_url)
    engine = make_engine(pg_database_url)
    with engine.begin() as conn:
        new_id = conn.execute(sa.text("INSERT INTO symbols (ticker, name) VALUES ('X:A', 'A') RETURNING id")).scalar()
    engine.dispose()
    assert isinstance(new_id, uuid.UUID)


def test_duplicate_ticker_refused(engine) -> None:
    with session_scope(engine) as s:
        s.add(Symbol(ticker="X:BTCUSD", name="Bitcoin"))
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            s.add(Symbol(ticker="X:BTCUSD", name="Bitcoin again"))


@pytest.mark.parametrize("table", ["models", "predictions"])
def test_bad_timeframe_refused(engine, table: str) -> None:
    with session_scope(engine) as s:
        sym = Symbol(ticker="X:BTCUSD", name="Bitcoin")
        model = _model()
        s.add_all([sym, model])
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            if table == "models":
                s.add(_model(timeframe="5m"))
            else:
                s.add(Prediction(symbol_id=sym.id, timeframe="2h", model_id=model.id, prediction_date=NOW,
                                 predict_until=NOW, num_steps=30))


def test_duplicate_model_version_and_second_active_refused(engine) -> None:
    with session_scope(engine) as s:
        s.add(_model(version="v1.0", active=True))
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            s.add(_model(version="v1.0"))
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            s.add(_model(version="v2.0", active=True))
    with session_scope(engine) as s:  # another timeframe may have its own active model
        s.add(_model(timeframe="1h", version="v1.0", active=True))


def test_deleting_a_symbol_cascades_to_predictions_and_steps(engine) -> None:
    with session_scope(engine) as s:
        sym, model = Symbol(ticker="X:PEPEUSD", name="Pepe"), _model()
        s.add_all([sym, model])
        s.flush()
        pred = Prediction(symbol_id=sym.id, timeframe="1d", model_id=model.id, prediction_date=NOW,
                          predict_until=NOW, num_steps=2, key_indicators=["RSI", "MACD"])
        s.add(pred)
        s.flush()
        s.add_all([PredictionStep(prediction_id=pred.id, step_number=i, timestamp=NOW, open=1.23456789e-5,
                                  high=1.3e-5, low=1.2e-5, close=1.234567891e-5) for i in (1, 2)])
    with session_scope(engine) as s:
        step = s.exec(select(PredictionStep).where(PredictionStep.step_number == 2)).one()
        # prices near 1e-5 keep their significant digits (NUMERIC(20,8) would keep four)
        assert step.close == pytest.approx(1.234567891e-5, rel=1e-12)
        assert s.get(Prediction, pred.id).key_indicators == ["RSI", "MACD"]
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            s.add(PredictionStep(prediction_id=pred.id, step_number=1, timestamp=NOW, open=1, high=1, low=1, close=1))
    with session_scope(engine) as s:
        s.delete(s.get(Symbol, sym.id))
    with session_scope(engine) as s:
        assert s.exec(select(Prediction)).all() == []
        assert s.exec(select(PredictionStep)).all() == []
        assert s.exec(select(ModelRecord)).one().id == model.id  # models are not owned by symbols


def test_migrate_command_on_empty_postgres(pg_database_url: str) -> None:
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": pg_database_url}
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "storage.migrate"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
    engine = make_engine(pg_database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0012"
    engine.dispose()


def test_a_serving_process_refuses_a_database_it_would_have_to_migrate(tmp_path) -> None:
    """`build_service` (every API replica) checks the schema and never migrates: one owner
    migrates once (the launcher, a job, `python -m storage.migrate`)."""
    from config import load_settings
    from serve_app.wiring import build_service
    from storage.migrate import SchemaBehind, require_current

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with pytest.raises(SchemaBehind, match="schema none, this code needs .*python -m storage.migrate"):
        require_current(make_engine(url))
    with pytest.raises(SchemaBehind):
        build_service(load_settings({"DATABASE_URL": url, "DATA_DIR": str(tmp_path), "MODEL_DIR": str(tmp_path)}))
    upgrade(url, "0009")
    with pytest.raises(SchemaBehind, match="schema 0009"):
        require_current(make_engine(url))
    upgrade(url)
    require_current(make_engine(url))
