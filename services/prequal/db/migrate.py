"""Applying the packaged migrations and checking that a database is at their head."""

from __future__ import annotations

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

SCRIPT_LOCATION = "prequal.db:migrations"
UPGRADE_HINT = "run `prequalctl db upgrade` (with DATABASE_URL set) first"


class SchemaNotReadyError(RuntimeError):
    """The database is not at the migrations' head; the message says what to run."""


def sqlalchemy_url(database_url: str) -> str:
    """The libpq URL of the settings, spelled for SQLAlchemy's psycopg 3 dialect."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    # ConfigParser interpolation would choke on a `%` in a password.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
    if head is None:
        raise RuntimeError("the package ships no migrations")
    return head


def upgrade(database_url: str, revision: str = "head") -> None:
    """Idempotent: a database already at head is left as it is."""
    command.upgrade(alembic_config(database_url), revision)


def current_revision(conn: psycopg.Connection[tuple[object, ...]]) -> str | None:
    exists = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


def check_at_head(database_url: str) -> None:
    """Raises SchemaNotReadyError unless the database is fully migrated."""
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        current = current_revision(conn)
    head = head_revision()
    if current != head:
        state = "not migrated" if current is None else f"at revision {current}"
        raise SchemaNotReadyError(f"database is {state}, the code needs {head}: {UPGRADE_HINT}")
