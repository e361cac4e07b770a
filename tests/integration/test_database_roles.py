"""One PostgreSQL role per service: each can do its own work and is refused the rest.

Real PostgreSQL, migrated to head; `prequal.db.roles.ensure_roles` run as the superuser (the
setup step `prequalctl db roles`); then each role connects and runs the services' own SQL, and
the statements it must never run."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from credit_service import records as credit_records
from decision_service.decided_event import DECIDED_CHANNEL
from decision_service.decided_event import WRITE_SQL as DECIDED_WRITE_SQL
from decision_service.handler import SELECT_SQL as DECISION_SELECT_SQL
from devstack.postgres import Postgres
from outbox_publisher import store
from prequal import audit, outbox
from prequal.consumer.batch import CLAIM_SQL
from prequal.consumer.dead_letters import _ISSUE_SQL, _RECORD_SQL
from prequal.db import migrate, roles
from prequal_api import rate_limit_store
from prequalctl.keys import generate_keys
from prequalctl.main import main as prequalctl
from tests.applications import application
from tests.integration.submission.conftest import base_env, start_api
from tests.tokens import Oidc
from webhook_dispatcher import slots

Denied = psycopg.errors.InsufficientPrivilege
Conn = psycopg.Connection[tuple[object, ...]]
Connect = Callable[[str], Conn]


@pytest.fixture(scope="module")
def database_url(postgres: Postgres) -> str:
    url = postgres.create_database("roles_test")
    migrate.upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        roles.ensure_roles(conn)
    return url


def as_role(database_url: str, service: str) -> str:
    """The same database as `service`'s role (loopback trust auth: no password in tests)."""
    return database_url.replace("postgresql://postgres@", f"postgresql://prequal_{service}@")


@pytest.fixture(scope="module")
def application_id(database_url: str) -> uuid.UUID:
    """A pending application, inserted by the owner (as a submission would have)."""
    app_id = uuid.uuid4()
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO applications (id, client_id, pan_ciphertext, pan_blind_index, "
            "first_name, last_name, date_of_birth, email, phone_number, requested_amount, "
            "monthly_income, loan_type) VALUES (%s, 'c', 'x', 'y', 'A', 'B', %s, 'a@b.c', "
            "'9999999999', 1000, 50000, 'PERSONAL')",
            (app_id, date(1990, 1, 1)),
        )
    return app_id


@pytest.fixture
def connect(database_url: str) -> Iterator[Connect]:
    opened: list[Conn] = []

    def _connect(service: str) -> Conn:
        conn = psycopg.connect(as_role(database_url, service))
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


def refused(conn: Conn, statement: str, *params: object) -> bool:
    try:
        conn.execute(statement.encode(), params or None)
    except Denied:
        conn.rollback()
        return True
    conn.rollback()
    return False


def test_setting_up_the_roles_twice_creates_nothing_new_and_changes_nothing(
    database_url: str,
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert roles.ensure_roles(conn) == []
        granted = conn.execute(
            "SELECT grantee, table_name, privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee LIKE 'prequal\\_%' ORDER BY 1, 2, 3"
        ).fetchall()
        assert roles.ensure_roles(conn) == []
        again = conn.execute(
            "SELECT grantee, table_name, privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee LIKE 'prequal\\_%' ORDER BY 1, 2, 3"
        ).fetchall()
    assert granted == again
    assert ("prequal_auditor", "audit_log", "SELECT") in granted


def test_no_service_role_may_rewrite_the_audit_trail(
    connect: Connect, application_id: uuid.UUID
) -> None:
    for service in ("api", "credit", "decision", "publisher"):
        conn = connect(service)
        assert refused(conn, "UPDATE audit_log SET principal = 'x'"), service
        assert refused(conn, "DELETE FROM audit_log"), service
        assert refused(conn, "TRUNCATE audit_log"), service
        assert refused(conn, "SELECT * FROM audit_log"), service
    writer = connect("api")
    entry = audit.AuditEntry(application_id, "read", "prequal-api", principal="c")
    writer.execute(audit.INSERT_SQL, entry.params())
    writer.commit()


def test_the_api_writes_the_outbox_but_cannot_read_its_payloads_or_decide(connect: Connect) -> None:
    api = connect("api")
    assert refused(api, "SELECT payload FROM outbox_events")
    assert refused(api, "UPDATE applications SET status = 'PRE_APPROVED'")
    assert refused(api, "DELETE FROM applications")
    assert refused(api, "INSERT INTO decisions (application_id) VALUES (gen_random_uuid())")
    assert refused(api, "CREATE TABLE sneaky (id int)")
    assert refused(api, "DROP TRIGGER audit_log_append_only ON audit_log")


def test_only_the_api_leases_rate_limit_tokens(connect: Connect) -> None:
    """The shared rate-limit buckets (migration 0013): the API leases and purges; no other
    role may read or refill a client's budget."""
    api = connect("api")
    params = {"client": "c", "scope": "get", "rate": 1.0, "burst": 10.0, "want": 2}
    assert api.execute(rate_limit_store.LEASE_SQL, params).fetchone() == (2, 8.0)
    api.execute(rate_limit_store.PURGE_SQL, (3600,))
    api.commit()
    for service in ("publisher", "credit", "decision", "webhooks", "auditor"):
        other = connect(service)
        assert refused(other, "SELECT * FROM rate_limit_buckets"), service
        assert refused(other, "UPDATE rate_limit_buckets SET tokens = 1000"), service


def test_the_publisher_touches_only_the_outbox(connect: Connect) -> None:
    publisher = connect("publisher")
    assert store.claim(publisher, [0, 1, 2], 10, delete=False) == []
    store.mark_published(publisher, [str(uuid.uuid4()).encode()])
    assert store.purge_published(publisher, 3600) == 0
    assert store.claim(publisher, [0], 10, delete=True) == []
    publisher.commit()
    assert refused(publisher, "SELECT id FROM applications")
    assert refused(publisher, "INSERT INTO outbox_events (id) VALUES (gen_random_uuid())")
    assert refused(publisher, "UPDATE outbox_events SET payload = '{}'")
    assert refused(publisher, "SELECT * FROM idempotency_keys")


def test_the_credit_service_records_its_work_but_reads_no_personal_field(
    connect: Connect, application_id: uuid.UUID
) -> None:
    credit = connect("credit")
    event_id = uuid.uuid4()
    credit.execute(CLAIM_SQL, ("credit-service", [event_id]))
    entry = audit.AuditEntry(application_id, "decrypt", "credit-service", event_id=event_id)
    credit.execute(audit.INSERT_SQL, entry.params())
    row = outbox.OutboxRow.new("reports", "credit.report.generated.v1", application_id, "{}")
    credit.execute(outbox.INSERT_SQL, row.params())
    # The same rows as its batches write them, after reading the batch's sealed data keys.
    assert set(credit_records.data_key_rows(credit, [application_id])) == {application_id}
    again = outbox.OutboxRow.new("reports", "credit.report.generated.v1", application_id, "{}")
    credit_records.insert_reports(credit, [(entry, again)])
    credit.execute(_RECORD_SQL, ("credit-service", uuid.uuid4(), "", application_id, "E"))
    credit.execute(_ISSUE_SQL, ("E", "m", application_id))
    credit.commit()
    for column in ("first_name", "email", "pan_ciphertext", "monthly_income"):
        assert refused(credit, f"SELECT {column} FROM applications"), column
    assert refused(credit, "UPDATE applications SET status = 'REJECTED'")
    assert refused(credit, "SELECT payload FROM outbox_events")


def test_the_decision_service_updates_only_the_status_columns(
    connect: Connect, application_id: uuid.UUID
) -> None:
    decision = connect("decision")
    assert decision.execute(DECISION_SELECT_SQL, ([application_id],)).fetchone() is not None
    decision.execute(
        "UPDATE applications SET status = 'MANUAL_REVIEW', credit_score = 700, "
        "decision_reason = 'r', max_approved_amount = %s, version = version + 1, "
        "updated_at = now() WHERE id = %s AND status = 'PENDING'",
        (Decimal("1000.00"), application_id),
    )
    event = outbox.OutboxRow.new("decided", "loan.application.decided.v1", application_id, "{}")
    decision.execute(
        DECIDED_WRITE_SQL, (outbox.rows_param([event]), DECIDED_CHANNEL, [str(application_id)])
    )
    decision.rollback()
    assert refused(decision, "UPDATE applications SET client_id = 'someone-else'")
    assert refused(decision, "UPDATE applications SET monthly_income = 1")
    assert refused(decision, "SELECT email, pan_ciphertext FROM applications")
    assert refused(decision, "INSERT INTO audit_log (action, actor) VALUES ('read', 'x')")
    # It writes the decided event through the outbox, but reads no event there.
    assert refused(decision, "SELECT payload FROM outbox_events")


def test_the_webhook_dispatcher_reads_endpoints_and_nothing_personal(connect: Connect) -> None:
    dispatcher = connect("webhooks")
    dispatcher.execute("SELECT id, url, secret FROM webhook_endpoints").fetchall()
    dispatcher.execute("SELECT id, status FROM webhook_deliveries").fetchall()
    assert refused(dispatcher, "SELECT email, monthly_income FROM applications")
    assert refused(dispatcher, "DELETE FROM webhook_endpoints")
    assert refused(dispatcher, "SELECT payload FROM outbox_events")


def test_only_the_webhook_dispatcher_takes_and_gives_back_endpoint_slots(
    connect: Connect,
) -> None:
    """The shared per-endpoint concurrency slots (migration 0015): the dispatcher's claim takes
    them, its renewal extends them, its outcome statements give them back; no other role."""
    dispatcher = connect("webhooks")
    claim = {"per_endpoint": 2, "free": 4, "lease": 35.0, "start": uuid.uuid4()}
    assert dispatcher.execute(slots.CLAIM_SQL, claim).fetchall() == []
    delivery = uuid.uuid4()
    endpoint = uuid.uuid4()
    dispatcher.execute(
        "INSERT INTO webhook_endpoint_slots VALUES (%s, 0, %s, now() + interval '30 s')",
        (endpoint, delivery),
    )
    mine = {delivery: slots.Held(endpoint, 0, 0.0)}
    renewed = dispatcher.execute(slots.RENEW_SQL, slots.renew_params(mine, 35.0))
    assert renewed.fetchall() == []  # no such delivery row: the slot alone is renewed
    for sql, extra in (
        (slots.DELIVERED_SQL, {}),
        (slots.RETRY_SQL, {"delay": 1.0, "error": "HTTP 500"}),
        (slots.DEAD_SQL, {"error": "HTTP 500"}),
    ):
        dispatcher.execute(sql, slots.outcome_params(delivery, endpoint, 0, **extra))
    held = dispatcher.execute(
        "SELECT count(*) FROM webhook_endpoint_slots WHERE expires_at > now()"
    ).fetchone()
    assert held == (0,)
    dispatcher.commit()
    for service in ("api", "publisher", "credit", "decision", "auditor"):
        other = connect(service)
        assert refused(other, "SELECT * FROM webhook_endpoint_slots"), service
        assert refused(other, "UPDATE webhook_endpoint_slots SET expires_at = now()"), service
    assert refused(dispatcher, "DELETE FROM webhook_endpoint_slots")


def test_the_auditor_reads_the_audit_trail_and_nothing_else(connect: Connect) -> None:
    auditor = connect("auditor")
    auditor.execute("SELECT count(*) FROM audit_log").fetchone()
    assert refused(auditor, "SELECT id FROM applications")
    assert refused(auditor, "INSERT INTO audit_log (action, actor) VALUES ('read', 'x')")


def test_the_api_runs_on_its_own_role(
    tmp_path: Path, database_url: str, oidc: Oidc, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submission (the database function), status read and idempotency under `prequal_api`."""
    env = base_env(
        DATABASE_URL=as_role(database_url, "api"),
        TOPIC_APPLICATIONS_SUBMITTED="loan_applications_submitted",
        **generate_keys("v1"),
        **oidc.api_env(),
    )
    api = start_api(tmp_path, env, token=oidc.token())
    try:
        with api.client() as http:
            body = application()
            posted = http.post("/applications", json=body, headers={"Idempotency-Key": "k1"})
            replay = http.post("/applications", json=body, headers={"Idempotency-Key": "k1"})
            app_id = posted.json()["application_id"]
            status = http.get(f"/applications/{app_id}/status")
            duplicate = http.post("/applications", json=body)
    finally:
        api.process.stop()
    assert (posted.status_code, replay.status_code, status.status_code) == (202, 202, 200)
    assert duplicate.status_code == 409
    monkeypatch.setenv("DATABASE_URL", as_role(database_url, "auditor"))
    monkeypatch.setenv("SECRETS_DIR", "/nonexistent")
    assert prequalctl(["audit", "--application", app_id, "-o", "json"]) == 0
