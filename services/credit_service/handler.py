"""Scoring one submitted application: decrypt the PAN (audited), score, write the report.

The report leaves through the transactional outbox, in the same transaction as the inbox row
and the audit row: nothing reaches Kafka unless all three are committed, and the outbox row's id
(which becomes the report's `ce_id`) is derived from the input event's id, so a re-delivered or
re-sent input can never yield a second, different report (docs/decision-path.md).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Histogram

from credit_service.scoring import LoanType, ScoreInput, credit_score
from prequal import audit, outbox
from prequal.consumer import AfterCommit, OutageError, PoisonRecordError
from prequal.events import (
    APPLICATION_SUBMITTED,
    CREDIT_REPORT_GENERATED,
    ApplicationSubmitted,
    CloudEventAttributes,
    CreditReportGenerated,
    parse_payload,
)
from prequal.kafka import InboundRecord
from prequal.pan import Keyring, PanDecryptionError, UnknownKeyIdError, from_transport

log = logging.getLogger(__name__)

ACTOR = "credit-service"
# Namespace of report ids: uuid5(REPORT_IDS, input ce_id) is the report's ce_id.
REPORT_IDS = uuid.UUID("6b1f4f0e-6f2a-5d8e-9a51-3c1d6f0e2b77")
SCORE_BUCKETS = tuple(float(score) for score in range(350, 901, 50))


def report_id(input_event_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(REPORT_IDS, str(input_event_id))


class CreditMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.scores = Histogram(
            "credit_score",
            "Credit scores of the reports written",
            buckets=SCORE_BUCKETS,
            registry=registry,
        )
        self.reports = Counter(
            "credit_reports", "Credit reports written to the outbox", registry=registry
        )


@dataclass(frozen=True)
class ScoreApplication:
    event_id: uuid.UUID
    application: ApplicationSubmitted


def decrypt_only(keys: dict[str, bytes]) -> Keyring:
    """A keyring for decryption: the active key id matters only to encryption."""
    return Keyring(keys, active_key_id=next(iter(keys)))


KeySource = Callable[[], dict[str, bytes]]
"""Reads the keys again from where the process got them (the mounted key Secret)."""


class CreditHandler:
    def __init__(
        self,
        keyring: Keyring,
        reports_topic: str,
        metrics: CreditMetrics,
        reload_keys: KeySource | None = None,
    ) -> None:
        self.keyring = keyring
        self.reports_topic = reports_topic
        self.metrics = metrics
        self.reload_keys = reload_keys

    def decode(self, event: CloudEventAttributes, record: InboundRecord) -> ScoreApplication:
        if event.type != APPLICATION_SUBMITTED:
            raise PoisonRecordError(f"unexpected event type {event.type!r} on {record.topic}")
        payload = parse_payload(event.type, record.value or b"")
        assert isinstance(payload, ApplicationSubmitted)
        if record.key != str(payload.application_id).encode():
            raise PoisonRecordError("record key does not match the payload's application_id")
        return ScoreApplication(event.id, payload)

    def _decrypt(self, blob: bytes, application_id: uuid.UUID) -> str:
        """A key id this process does not know yet is an outage of this process, not poison.

        After a rotation the API may encrypt with a key the mounted Secret has not brought to
        this pod yet: the keys are read again from their source and, while the key is still
        missing, the record waits (retried as an outage) instead of being dead-lettered.
        """
        try:
            return self.keyring.decrypt(blob, application_id)
        except UnknownKeyIdError as exc:
            wanted = Keyring.key_id_of(blob)
            keys: dict[str, bytes] = {}
            if self.reload_keys is not None:
                try:
                    keys = self.reload_keys()
                except Exception as reload_error:  # noqa: BLE001 - a half-written Secret
                    log.warning("reloading the keys failed: %s", reload_error)
            if wanted not in keys:
                raise OutageError(
                    f"{exc}; not in the reloaded keys either: waiting for the key Secret "
                    "to reach this process"
                ) from exc
            self.keyring = decrypt_only(keys)
            log.info("keys reloaded; key %s is now known", wanted)
            return self.keyring.decrypt(blob, application_id)

    def apply(self, conn: psycopg.Connection[Any], command: ScoreApplication) -> AfterCommit:
        application = command.application
        audited = audit.AuditEntry(
            application.application_id,
            "decrypt",
            ACTOR,
            detail="credit scoring",
            event_id=command.event_id,
            purpose=audit.PURPOSE_CREDIT_SCORING,
        )
        try:
            blob = from_transport(application.pan_encrypted)
            pan = self._decrypt(blob, application.application_id)
        except PanDecryptionError as exc:
            failed = replace(
                audited, key_id=_key_id_or_none(application.pan_encrypted), outcome="failed"
            )
            raise PoisonRecordError(f"PAN cannot be decrypted: {exc}", audit=failed) from exc
        key_id = Keyring.key_id_of(blob)
        score = credit_score(
            ScoreInput(
                application.application_id,
                pan,
                application.monthly_income,
                LoanType(application.loan_type),
            )
        )
        del pan
        report = CreditReportGenerated(
            application_id=application.application_id,
            credit_score=score,
            monthly_income=application.monthly_income,
            requested_amount=application.requested_amount,
            loan_type=application.loan_type,
            generated_at=datetime.now(UTC),
        )
        row = outbox.OutboxRow(
            topic=self.reports_topic,
            event_type=CREDIT_REPORT_GENERATED,
            aggregate_id=application.application_id,
            payload_json=report.model_dump_json(),
            id=report_id(command.event_id),
        )
        conn.execute(audit.INSERT_SQL, replace(audited, key_id=key_id).params())
        conn.execute(outbox.INSERT_SQL, row.params())

        def committed() -> None:
            self.metrics.scores.observe(score)
            self.metrics.reports.inc()
            log.debug(
                "credit report %s written (score %d)",
                row.id,
                score,
                extra={"application_id": str(application.application_id)},
            )

        return committed


def _key_id_or_none(transported: str) -> str | None:
    """The key id a ciphertext names, if it is well-formed enough to name one."""
    try:
        return Keyring.key_id_of(from_transport(transported))
    except (PanDecryptionError, ValueError):
        return None
