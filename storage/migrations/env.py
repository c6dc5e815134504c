"""Alembic environment: runs migrations on the connection or URL `storage.migrate` hands it."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import storage.schema  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage.db import make_engine

target_metadata = SQLModel.metadata
config = context.config

connection = config.attributes.get("connection")
if connection is not None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a SQLite table (copy, drop, rename); with foreign keys on, the
            # drop would cascade to the rows that reference it (prediction_steps). The pragma
            # only takes effect outside a transaction, so it comes first; the check after the
            # migration proves no reference was broken before the keys are on again.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        with conn.begin():
            context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left {len(broken)} broken foreign keys, e.g. {broken[:3]}")
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
    engine.dispose()
