"""Table definitions: the one description of the schema that migrations and queries follow.

Services query with plain SQL through psycopg 3 (async in the API, sync in the consumers); these
definitions document the columns and let Alembic compare the models with the database.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP, UUID

metadata = MetaData()

STATUSES = ("PENDING", "PRE_APPROVED", "REJECTED", "MANUAL_REVIEW")
LOAN_TYPES = ("PERSONAL", "HOME", "AUTO")
AUDIT_ACTIONS = ("encrypt", "decrypt", "mask", "consent", "read", "erase", "reseal")
AUDIT_OUTCOMES = ("ok", "failed", "refused")
FINAL_STATUSES = STATUSES[1:]
# Outbox rows are spread over a fixed number of lanes by application id; one publisher owns a
# lane at a time, which keeps each application's events in order (docs/submission-path.md).
OUTBOX_LANES = 64

_NOW = text("now()")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


applications = Table(
    "applications",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    # The OAuth2 client that submitted it; reads name it in the WHERE clause (migration 0005).
    Column("client_id", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'PENDING'")),
    # Under the application's data key (0x02) or, before migration 0007, the keyring (0x01);
    # NULL once the personal data is erased.
    Column("pan_ciphertext", LargeBinary),
    Column("pan_blind_index", LargeBinary),
    # The index key (prequal.blind_index) the blind index was made with (migration 0010).
    Column("pan_index_key_id", Text),
    # `XXXXXX234F`, stored at submission so a status read decrypts nothing.
    Column("pan_masked", Text),
    # Another client submitted this PAN in the last 24 h: decision-service rejects it.
    Column("recent_application_elsewhere", Boolean, nullable=False, server_default=text("false")),
    # Plaintext personal fields of rows from before migration 0007; no longer written.
    Column("first_name", Text),
    Column("last_name", Text),
    Column("date_of_birth", Date),
    Column("email", Text),
    Column("phone_number", Text),
    # Names, date of birth, e-mail and phone, encrypted under the data key (prequal.sealing).
    Column("personal_ciphertext", LargeBinary),
    Column("personal_data_erased_at", TIMESTAMP(timezone=True)),
    Column("requested_amount", Numeric(14, 2), nullable=False),
    Column("monthly_income", Numeric(14, 2), nullable=False),
    Column("loan_type", Text, nullable=False),
    Column("credit_score", Integer),
    Column("decision_reason", Text),
    Column("max_approved_amount", Numeric(16, 2)),
    Column("version", Integer, nullable=False, server_default=text("1")),
    # The latest dead letter's reason, until a final status (migration 0004).
    Column("processing_issue_code", Text),
    Column("processing_issue_message", Text),
    Column("processing_issue_since", TIMESTAMP(timezone=True)),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    Column("updated_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    CheckConstraint(_in("status", STATUSES), name="ck_applications_status"),
    CheckConstraint(_in("loan_type", LOAN_TYPES), name="ck_applications_loan_type"),
    # The 24-hour duplicate rule looks up recent rows by blind index.
    Index("ix_applications_pan_recent", "pan_blind_index", "created_at"),
    # `prequalctl reindex` finds the rows still under an old index key.
    Index(
        "ix_applications_pan_index_key_id",
        "pan_index_key_id",
        postgresql_where=text("pan_index_key_id IS NOT NULL"),
    ),
    # Room on each page for the decision's update of its rows, in place (migration 0016).
    postgresql_with={"fillfactor": 75},
)

# The data key of each application, sealed with HPKE to the credit service (migration 0007).
# Deleting the row erases the applicant wherever the ciphertexts went (crypto-shredding).
application_data_keys = Table(
    "application_data_keys",
    metadata,
    Column("application_id", UUID(as_uuid=True), ForeignKey("applications.id"), primary_key=True),
    Column("key_id", Text, nullable=False),
    Column("sealed_key", LargeBinary, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    Index("ix_application_data_keys_key_id", "key_id"),
)

outbox_events = Table(
    "outbox_events",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("seq", BigInteger, Identity(always=True), nullable=False),
    Column("aggregate_id", UUID(as_uuid=True), nullable=False),
    Column("lane", SmallInteger, nullable=False),
    Column("topic", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    Column("published_at", TIMESTAMP(timezone=True)),
    CheckConstraint(f"lane >= 0 AND lane < {OUTBOX_LANES}", name="ck_outbox_events_lane"),
    # What the publisher claims: unpublished rows, oldest first (filtered by its lanes).
    Index(
        "ix_outbox_events_unpublished",
        "seq",
        postgresql_where=text("published_at IS NULL"),
    ),
    Index(
        "ix_outbox_events_published",
        "published_at",
        postgresql_where=text("published_at IS NOT NULL"),
    ),
)

processed_messages = Table(
    "processed_messages",
    metadata,
    Column("consumer_group", Text, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("processed_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("consumer_group", "event_id", name="pk_processed_messages"),
)

# One row per dead letter written, so a record is dead-lettered once per group (and replay).
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("consumer_group", Text, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("replay_of", Text, nullable=False, server_default=text("''")),
    Column("application_id", UUID(as_uuid=True)),
    Column("error_class", Text, nullable=False),
    Column("dead_lettered_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("consumer_group", "event_id", "replay_of", name="pk_dead_letters"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    Column("application_id", UUID(as_uuid=True)),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("key_id", Text),
    Column("detail", Text),
    # Who (OAuth2 client id, or the service), for which request or event, why, how it ended
    # (migration 0008). Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE.
    Column("principal", Text, nullable=False),
    Column("request_id", Text),
    Column("event_id", UUID(as_uuid=True)),
    Column("purpose", Text, nullable=False),
    Column("outcome", Text, nullable=False, server_default=text("'ok'")),
    CheckConstraint(_in("action", AUDIT_ACTIONS), name="ck_audit_log_action"),
    CheckConstraint(_in("outcome", AUDIT_OUTCOMES), name="ck_audit_log_outcome"),
    Index("ix_audit_log_application", "application_id"),
    Index("ix_audit_log_principal_at", "principal", "at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    # HMAC of (client id, Idempotency-Key): keys are per client and never stored in clear.
    Column("key_hmac", LargeBinary, primary_key=True),
    # Keyed HMAC of the request body: the body holds a PAN, so no bare hash of it is stored.
    Column("request_hmac", LargeBinary, nullable=False),
    # The index key both HMACs were made with (migration 0010).
    Column("index_key_id", Text, nullable=False),
    Column("application_id", UUID(as_uuid=True), nullable=False),
    Column("status_code", SmallInteger, nullable=False),
    Column("response", JSONB, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    Index("ix_idempotency_keys_created", "created_at"),
)

# Migration 0013: per-client rate limits shared by the API processes (prequal_api.rate_limits).
rate_limit_buckets = Table(
    "rate_limit_buckets",
    metadata,
    Column("client_id", Text, nullable=False),
    # "post" or "get": the limit a route counts against.
    Column("scope", Text, nullable=False),
    # The bucket's level at updated_at (refilled on the next lease, up to the burst).
    Column("tokens", Double, nullable=False),
    # What the last lease took: the statement's RETURNING reads it.
    Column("granted", Integer, nullable=False),
    Column(
        "updated_at",
        TIMESTAMP(timezone=True),
        nullable=False,
        server_default=text("clock_timestamp()"),
    ),
    PrimaryKeyConstraint("client_id", "scope", name="pk_rate_limit_buckets"),
    Index("ix_rate_limit_buckets_updated", "updated_at"),
    # No WAL: a lease's commit waits for no fsync; a crash empties it (full buckets).
    prefixes=["UNLOGGED"],
)

# Migration 0006: decisions a lender can explain (docs/decisions.md).
policy_documents = Table(
    "policy_documents",
    metadata,
    Column("version", Text, primary_key=True),
    # The canonical JSON as text (jsonb would reorder it): its SHA-256 is the version.
    Column("document", Text, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
)

decisions = Table(
    "decisions",
    metadata,
    Column("application_id", UUID(as_uuid=True), ForeignKey("applications.id"), primary_key=True),
    Column("status", Text, nullable=False),
    Column("reason_codes", ARRAY(Text), nullable=False),
    Column("reasons", JSONB, nullable=False),
    Column("policy_version", Text, ForeignKey("policy_documents.version"), nullable=False),
    Column("trace", JSONB, nullable=False),
    Column("offer_amount", Numeric(14, 2)),
    Column("offer_term_months", Integer),
    Column("offer_annual_rate", Numeric(5, 4)),
    Column("offer_processing_fee", Numeric(14, 2)),
    Column("offer_apr", Numeric(5, 4)),
    Column("offer_emi", Numeric(14, 2)),
    Column("offer_currency", Text),
    Column("offer_expires_at", TIMESTAMP(timezone=True)),
    Column("decided_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    CheckConstraint(_in("status", FINAL_STATUSES), name="ck_decisions_status"),
    CheckConstraint("cardinality(reason_codes) BETWEEN 1 AND 4", name="ck_decisions_reason_count"),
    Index("ix_decisions_policy_version", "policy_version"),
)

shadow_decisions = Table(
    "shadow_decisions",
    metadata,
    Column("application_id", UUID(as_uuid=True), ForeignKey("applications.id"), nullable=False),
    Column("policy_version", Text, ForeignKey("policy_documents.version"), nullable=False),
    Column("champion_version", Text, ForeignKey("policy_documents.version"), nullable=False),
    Column("status", Text, nullable=False),
    Column("champion_status", Text, nullable=False),
    Column("reason_codes", ARRAY(Text), nullable=False),
    Column("reasons", JSONB, nullable=False),
    Column("trace", JSONB, nullable=False),
    Column("offer", JSONB),
    Column("decided_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("application_id", "policy_version", name="pk_shadow_decisions"),
    CheckConstraint(_in("status", FINAL_STATUSES), name="ck_shadow_decisions_status"),
    Index("ix_shadow_decisions_policy_version", "policy_version"),
)

consents = Table(
    "consents",
    metadata,
    Column("application_id", UUID(as_uuid=True), ForeignKey("applications.id"), primary_key=True),
    Column("soft_inquiry", Boolean, nullable=False),
    Column("text_version", Text, nullable=False),
    Column("captured_at", TIMESTAMP(timezone=True), nullable=False),
    Column("channel", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("recorded_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    CheckConstraint("soft_inquiry", name="ck_consents_soft_inquiry"),
)

WEBHOOK_DELIVERY_STATUSES = ("PENDING", "DELIVERED", "DEAD")

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("client_id", Text, nullable=False),
    Column("url", Text, nullable=False),
    # The signing secret, shown to the client once at creation, stored sealed to the webhook
    # dispatcher (migration 0011); `secret` is the plaintext of rows from before 0011 that
    # `prequalctl webhooks reseal` has not sealed yet.
    Column("secret", Text),
    Column("sealed_secret", LargeBinary),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    CheckConstraint("starts_with(secret, 'whsec_')", name="ck_webhook_endpoints_secret"),
    CheckConstraint(
        "num_nonnulls(secret, sealed_secret) = 1", name="ck_webhook_endpoints_one_secret"
    ),
    Index("ix_webhook_endpoints_client_id", "client_id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "endpoint_id",
        UUID(as_uuid=True),
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("application_id", UUID(as_uuid=True), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'PENDING'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    Column("last_error", Text),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=_NOW),
    Column("delivered_at", TIMESTAMP(timezone=True)),
    UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
    CheckConstraint(_in("status", WEBHOOK_DELIVERY_STATUSES), name="ck_webhook_deliveries_status"),
    Index(
        "ix_webhook_deliveries_due",
        "endpoint_id",
        "next_attempt_at",
        postgresql_where=text("status = 'PENDING'"),
    ),
)
