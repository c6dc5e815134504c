"""The database role the service runs as, where the migrations run as the owner
(`DATABASE_MIGRATION_URL`): it may read and write what the product needs, but never change or
delete what the public log hashes, nor switch the log's guards off (only an owner may alter,
disable or drop a table's triggers, and only a superuser may skip them).

    python -m storage.migrate --grant-service ROLE   (as the owner, after the migrations)
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.schema import (
    LedgerCheckpoint,
    LedgerCosignature,
    LedgerEntry,
    LedgerLeaf,
    LedgerTreeNode,
    ModelRecord,
    Prediction,
    PredictionStep,
    Symbol,
)

# the log itself: append and read, nothing else
APPEND_ONLY = tuple(t.__table__.name for t in (LedgerEntry, LedgerLeaf, LedgerTreeNode, LedgerCheckpoint, LedgerCosignature))
# the rows a log entry's canonical JSON is rebuilt from, and the columns of theirs it reads
HASHED: dict[str, tuple[str, ...]] = {
    Prediction.__table__.name: ("id", "symbol_id", "timeframe", "model_id", "created_at", "ledger_seq"),
    PredictionStep.__table__.name: ("id", "prediction_id", "step_number", "timestamp", "close", "lower", "upper"),
    ModelRecord.__table__.name: ("id", "version"),
    Symbol.__table__.name: ("id", "ticker"),
}
TABLES = {t.__table__.name: t.__table__ for t in (Prediction, PredictionStep, ModelRecord, Symbol)}


def grant_service(conn: Connection, role: str) -> list[str]:
    """Grant `role` what the service needs and nothing over the log; returns the statements run."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError(f"{role!r} is not a plain PostgreSQL role name (lower-case letters, digits, _)")
    if conn.dialect.name != "postgresql":
        raise ValueError("database roles are PostgreSQL's; an SQLite file is guarded by who can write it")
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {', '.join(APPEND_ONLY)} FROM {role}",
    ]
    for name, hashed in HASHED.items():
        free = [c.name for c in TABLES[name].columns if c.name not in hashed]
        statements.append(f"REVOKE UPDATE, DELETE, TRUNCATE ON {name} FROM {role}")
        statements.append(f"GRANT UPDATE ({', '.join(free)}) ON {name} TO {role}")
    for statement in statements:
        conn.execute(sa.text(statement))
    return statements
