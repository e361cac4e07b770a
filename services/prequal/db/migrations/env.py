"""Alembic environment, shipped inside the package so `prequalctl db upgrade` works from a wheel.

Migrations run under a PostgreSQL advisory lock: two pods starting at once apply them once.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from prequal.db.tables import metadata

MIGRATION_LOCK = 7_302_001  # any constant; shared by every migrating process

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migrations")
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            connection.commit()
            try:
                context.configure(connection=connection, target_metadata=metadata)
                with context.begin_transaction():
                    context.run_migrations()
                connection.commit()
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError(
        "offline (SQL script) migrations are not supported; run `prequalctl db upgrade`"
    )
run_migrations_online()
