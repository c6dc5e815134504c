"""`python -m storage.migrate [--grant-service ROLE]`: bring the database to the newest schema (a
no-op when it is), as `DATABASE_MIGRATION_URL` (the owner) where it is set, else `DATABASE_URL`;
`--grant-service` then gives ROLE the service's rights (`storage.roles`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from config import Settings, mask_url, settings_or_exit
from storage.db import database_or_exit

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # `%` is ConfigParser's interpolation character; URLs may contain it (escaped passwords).
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


class SchemaBehind(RuntimeError):
    """The database's schema is not the one this code needs (a process that may not migrate)."""


def require_current(engine: Engine) -> None:
    """What a process that serves checks at start instead of migrating (each API replica would
    otherwise race the others, and as the service role it may not): the database is at the
    newest revision. The launcher (`python -m serve_app`), the jobs and `python -m
    storage.migrate` migrate."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current != head:
        raise SchemaBehind(f"the database {mask_url(engine.url.render_as_string(hide_password=True))} is at schema "
                           f"{current or 'none'}, this code needs {head}: run `python -m storage.migrate` (the jobs "
                           "and `python -m serve_app` run it at start)")


def migration_url(settings: Settings) -> str:
    """Who migrates: the owner's URL where it is set apart from the service's."""
    return settings.database_migration_url or settings.database_url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    parser.add_argument("--grant-service", metavar="ROLE", help="grant ROLE the service's rights (PostgreSQL)")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    url = migration_url(settings)
    database_or_exit(url)
    upgrade(url, args.revision)
    print(f"schema at revision {args.revision} on {mask_url(url)}")
    if args.grant_service:
        from sqlalchemy import create_engine

        from storage.roles import grant_service

        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                grant_service(conn, args.grant_service)
        except ValueError as exc:
            raise SystemExit(f"--grant-service: {exc}") from None
        finally:
            engine.dispose()
        print(f"granted {args.grant_service} the service's rights: no UPDATE or DELETE on what the public log hashes")


if __name__ == "__main__":
    main()
