"""One PostgreSQL role per service, each with only the grants it needs (docs/database-roles.md).

Roles are cluster-wide objects and creating one needs CREATEROLE, which the migrations role
should not have: so roles are made by a setup step (`prequalctl db roles`), not by a
migration. The step is idempotent: it creates the roles that are missing (a password only
when given), then grants on this database's objects, which it can re-run after every
migration because GRANT is idempotent too. Everything not granted here is refused: no service
may UPDATE or DELETE an audit row, read the outbox's payloads unless it is the publisher, or
change an application's status unless it is the decision service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg import sql

SERVICES = ("api", "publisher", "credit", "decision", "webhooks", "auditor")
DEFAULT_PREFIX = "prequal_"

# What the consumers share: the inbox, the dead-letter records and the reason they put on a
# pending application (prequal.consumer.dead_letters), the schema check at startup.
_CONSUMER: tuple[LiteralString, ...] = (
    "GRANT SELECT, INSERT ON processed_messages TO {role}",
    "GRANT SELECT, INSERT ON dead_letters TO {role}",
    "GRANT SELECT (id, status) ON applications TO {role}",
    "GRANT UPDATE (processing_issue_code, processing_issue_message, processing_issue_since) "
    "ON applications TO {role}",
)

GRANTS: Mapping[str, tuple[LiteralString, ...]] = {
    # Submissions through submit_application (SECURITY INVOKER: the caller's grants apply),
    # status reads, consents, idempotency keys; audit rows only appended; the outbox only
    # written, never read.
    "api": (
        "GRANT SELECT, INSERT ON applications TO {role}",
        "GRANT INSERT ON outbox_events TO {role}",
        "GRANT INSERT ON audit_log TO {role}",
        "GRANT SELECT, INSERT ON consents TO {role}",
        "GRANT SELECT ON decisions TO {role}",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO {role}",
        # Rate-limit leases (INSERT … ON CONFLICT DO UPDATE … RETURNING) and the purge of
        # idle buckets; no other role touches them.
        "GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limit_buckets TO {role}",
        # A client's webhook endpoints (`webhooks:manage`); deleting one cascades to its
        # deliveries with the table owner's rights.
        "GRANT SELECT, INSERT, DELETE ON webhook_endpoints TO {role}",
        # Sealed data keys are written at submission and deleted by an erasure (crypto-
        # shredding), which also clears the personal columns; never the status or figures.
        "GRANT INSERT, DELETE ON application_data_keys TO {role}",
        # DELETE … WHERE application_id … RETURNING key_id reads those two columns.
        "GRANT SELECT (application_id, key_id) ON application_data_keys TO {role}",
        "GRANT UPDATE (pan_ciphertext, pan_blind_index, pan_index_key_id, pan_masked, "
        "personal_ciphertext, "
        "first_name, last_name, date_of_birth, email, phone_number, personal_data_erased_at, "
        "updated_at, version) ON applications TO {role}",
    ),
    # The outbox and nothing else: claim, mark published, purge.
    "publisher": (
        "GRANT SELECT, DELETE ON outbox_events TO {role}",
        "GRANT UPDATE (published_at) ON outbox_events TO {role}",
    ),
    # Decrypts (audited) and writes the report through the outbox; reads no application row.
    "credit": (
        *_CONSUMER,
        # Opens the application's sealed data key (the event never carries it); an erased
        # application has none, and its erasure time says why.
        "GRANT SELECT ON application_data_keys TO {role}",
        "GRANT SELECT (personal_data_erased_at) ON applications TO {role}",
        "GRANT INSERT ON audit_log TO {role}",
        "GRANT INSERT ON outbox_events TO {role}",
    ),
    # Reads the figures it decides on and updates only the status columns; writes decisions
    # and the decided event (to the owning client) through the outbox.
    "decision": (
        *_CONSUMER,
        "GRANT SELECT (version, monthly_income, requested_amount, loan_type, "
        "recent_application_elsewhere, client_id) ON applications TO {role}",
        "GRANT INSERT ON outbox_events TO {role}",
        "GRANT UPDATE (status, credit_score, decision_reason, max_approved_amount, version, "
        "updated_at) ON applications TO {role}",
        "GRANT INSERT ON decisions, shadow_decisions TO {role}",
        "GRANT SELECT, INSERT ON policy_documents TO {role}",
    ),
    # Turns decided events into deliveries for the owning client's endpoints and sends them.
    "webhooks": (
        *_CONSUMER,
        "GRANT SELECT ON webhook_endpoints TO {role}",
        "GRANT SELECT, INSERT, UPDATE ON webhook_deliveries TO {role}",
        # Per-endpoint concurrency slots shared by every replica (taken, renewed, given back).
        "GRANT SELECT, INSERT, UPDATE ON webhook_endpoint_slots TO {role}",
    ),
    # `prequalctl audit`: reads the audit trail, nothing else.
    "auditor": ("GRANT SELECT ON audit_log TO {role}",),
}

# Every role: connect, see the schema, check the migration revision at startup.
_COMMON: tuple[LiteralString, ...] = (
    "GRANT CONNECT ON DATABASE {database} TO {role}",
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT ON alembic_version TO {role}",
)


@dataclass(frozen=True)
class RoleNames:
    prefix: str = DEFAULT_PREFIX

    def of(self, service: str) -> str:
        return f"{self.prefix}{service}"


def ensure_roles(
    conn: psycopg.Connection[Any],
    passwords: Mapping[str, str] | None = None,
    names: RoleNames | None = None,
) -> list[str]:
    """Creates the missing roles, sets the passwords given, grants; returns the roles made.

    Run it as a role that may create roles and owns the tables (a superuser, or the database
    owner with CREATEROLE), after `prequalctl db upgrade`.
    """
    names = names or RoleNames()
    passwords = passwords or {}
    created: list[str] = []
    database = conn.execute("SELECT current_database()").fetchone()
    assert database is not None
    with conn.transaction():
        for service in SERVICES:
            role = names.of(service)
            if _create_if_missing(conn, role):
                created.append(role)
            password = passwords.get(service)
            if password:
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(password)
                    )
                )
            for statement in (*_COMMON, *GRANTS[service]):
                conn.execute(
                    sql.SQL(statement).format(
                        role=sql.Identifier(role), database=sql.Identifier(str(database[0]))
                    )
                )
    return created


def _create_if_missing(conn: psycopg.Connection[Any], role: str) -> bool:
    """Roles are cluster-wide: a setup of another database may create it at the same moment
    (an advisory lock would not help, those are per database), so losing that race is fine."""
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
        return False
    try:
        with conn.transaction():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
        return False
    return True
