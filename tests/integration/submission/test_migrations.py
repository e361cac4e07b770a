"""`prequalctl db upgrade` builds the schema DESIGN.md needs and is safe to repeat."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

from devstack.postgres import Postgres
from prequal.db import migrate
from tests.integration.submission.conftest import base_env

PREQUALCTL = str(Path(sys.executable).parent / "prequalctl")


def _prequalctl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PREQUALCTL, *args],
        env=base_env(DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_db_upgrade_creates_the_tables_and_indexes_and_is_idempotent(postgres: Postgres) -> None:
    url = postgres.create_database("sub_migrations")
    assert _prequalctl(url, "db", "check").returncode == 1
    first = _prequalctl(url, "db", "upgrade")
    second = _prequalctl(url, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert _prequalctl(url, "db", "check").returncode == 0
    with psycopg.connect(url) as conn:
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        }
        indexes = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            ).fetchall()
        )
        fillfactor = conn.execute(
            "SELECT reloptions FROM pg_class WHERE relname = 'applications'"
        ).fetchone()
        version_column = conn.execute(
            "SELECT column_default FROM information_schema.columns "
            "WHERE table_name = 'applications' AND column_name = 'version'"
        ).fetchone()
    assert {
        "applications",
        "outbox_events",
        "processed_messages",
        "audit_log",
        "idempotency_keys",
        "alembic_version",
    } <= tables
    assert "WHERE (published_at IS NULL)" in indexes["ix_outbox_events_unpublished"]
    assert "(pan_blind_index, created_at)" in indexes["ix_applications_pan_recent"]
    assert "(consumer_group, event_id)" in indexes["pk_processed_messages"]
    assert version_column == ("1",)
    assert fillfactor == (["fillfactor=75"],)  # migration 0016: decisions update in place


def test_upgrade_to_0010_labels_existing_indexes_with_the_legacy_key_id_v0(
    postgres: Postgres,
) -> None:
    """Rows made with the single PAN_BLIND_INDEX_KEY are the ring's v0 after the upgrade; an
    erased row (no index) gets no key id."""
    url = postgres.create_database("sub_migrations_0010")
    migrate.upgrade(url, "0009")
    live, erased = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url) as conn:
        for app_id, index in ((live, os.urandom(32)), (erased, None)):
            conn.execute(
                "INSERT INTO applications (id, client_id, pan_blind_index, requested_amount, "
                "monthly_income, loan_type) VALUES (%s, 'c', %s, 1, 1, 'PERSONAL')",
                (app_id, index),
            )
        conn.execute(
            "INSERT INTO idempotency_keys (key_hmac, request_hmac, application_id, status_code, "
            "response) VALUES (%s, %s, %s, 202, '{}')",
            (os.urandom(32), os.urandom(32), live),
        )
    migrate.upgrade(url)
    with psycopg.connect(url) as conn:
        keys = dict(conn.execute("SELECT id, pan_index_key_id FROM applications").fetchall())
        idem = conn.execute("SELECT index_key_id FROM idempotency_keys").fetchall()
    assert keys == {live: "v0", erased: None}
    assert idem == [("v0",)]
