"""`python -m storage.migrate`: bring `DATABASE_URL` to the newest schema (a no-op when it is)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config

from config import mask_url, settings_or_exit
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    database_or_exit(settings.database_url)
    upgrade(settings.database_url, args.revision)
    print(f"schema at revision {args.revision} on {mask_url(settings.database_url)}")


if __name__ == "__main__":
    main()
