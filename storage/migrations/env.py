"""Alembic environment: runs migrations on the connection or URL `storage.migrate` hands it."""

from __future__ import annotations

from alembic import context

import storage.schema  # noqa: F401  (registers the tables on SQLModel.metadata)
from sqlmodel import SQLModel
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
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
