"""Scoring one submitted application: open the PAN (audited), score, write the report.

The PAN in the event is encrypted under the application's data key; the data key is read
sealed from `application_data_keys` and opened with this service's private key (the only
process that holds one). An erased application has no data key any more: its event, replayed
from Kafka or a DLQ, is dead-lettered at once as `PERSONAL_DATA_ERASED`, never retried. PAN
ciphertexts from before migration 0007 (keyring format 0x01) open with the legacy keyring.

The report leaves through the transactional outbox, in the same transaction as the inbox row
and the audit row: nothing reaches Kafka unless all three are committed, and the outbox row's id
(which becomes the report's `ce_id`) is derived from the input event's id, so a re-delivered or
re-sent input can never yield a second, different report (docs/decision-path.md).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Histogram

from credit_service.records import (
    DataKeyRow,
    data_key_row,
    data_key_rows,
    insert_report,
    insert_reports,
)
from credit_service.scoring import LoanType, ScoreInput, credit_score
from prequal import audit, outbox, sealing
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


def decrypt_only(keys: dict[str, bytes]) -> Keyring | None:
    """A legacy keyring for decryption (the active key id matters only to encryption)."""
    return Keyring(keys, active_key_id=next(iter(keys))) if keys else None


@dataclass(frozen=True)
class Keys:
    """What opens: the sealing private keys and the legacy decrypt-only keyring."""

    opener: sealing.Opener
    legacy: Keyring | None = None


KeySource = Callable[[], Keys]
"""Reads the keys again from where the process got them (the mounted key Secret)."""


class PersonalDataErasedError(PoisonRecordError):
    """The application's data key was deleted (crypto-shredding): this copy can never open."""


class CreditHandler:
    def __init__(
        self,
        keys: Keys,
        reports_topic: str,
        metrics: CreditMetrics,
        reload_keys: KeySource | None = None,
    ) -> None:
        self.keys = keys
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

    def _reload(self, exc: Exception, wanted: str, known: Callable[[Keys], bool]) -> Keys:
        """A key id this process does not know yet is an outage of this process, not poison.

        After a rotation the API may seal with a key the mounted Secret has not brought to this
        pod yet: the keys are read again from their source and, while the key is still missing,
        the record waits (retried as an outage) instead of being dead-lettered.
        """
        keys = self._reloaded()
        if keys is None or not known(keys):
            raise OutageError(
                f"{exc}; not in the reloaded keys either: waiting for the key Secret "
                "to reach this process"
            ) from exc
        self.keys = keys
        log.info("keys reloaded; key %s is now known", wanted)
        return keys

    def _reloaded(self) -> Keys | None:
        if self.reload_keys is None:
            return None
        try:
            return self.reload_keys()
        except Exception as reload_error:  # noqa: BLE001 - a half-written Secret
            log.warning("reloading the keys failed: %s", reload_error)
            return None

    def _open_legacy(self, blob: bytes, application_id: uuid.UUID) -> tuple[str, str]:
        wanted = Keyring.key_id_of(blob)
        legacy = self.keys.legacy
        reloaded = self._reloaded() if legacy is None else None
        if legacy is None and (reloaded is None or reloaded.legacy is None):
            # No legacy keyring at all is configuration, not a key on its way: never opens.
            raise PoisonRecordError(
                f"PAN ciphertext in the legacy keyring format (key id {wanted!r}), and this "
                "process has no PAN_ENCRYPTION_KEYS to open it"
            )
        if legacy is None or wanted not in legacy.keys:
            missing = UnknownKeyIdError(f"legacy PAN ciphertext uses key id {wanted!r}")
            legacy = self._reload(
                missing, wanted, lambda k: k.legacy is not None and wanted in k.legacy.keys
            ).legacy
            assert legacy is not None
        return legacy.decrypt(blob, application_id), wanted

    def _open_data_key(
        self, application_id: uuid.UUID, row: DataKeyRow | None
    ) -> tuple[bytes, str]:
        if row is None:
            raise PoisonRecordError(f"application {application_id} does not exist")
        sealed_key, erased_at = row
        if sealed_key is None:
            if erased_at is not None:
                raise PersonalDataErasedError(
                    f"PERSONAL_DATA_ERASED: the personal data of application {application_id} "
                    f"was erased at {erased_at.isoformat()}; this copy can never be opened"
                )
            raise PoisonRecordError(f"application {application_id} has no sealed data key")
        sealed_key = bytes(sealed_key)
        try:
            return self.keys.opener.open_key(sealed_key, application_id), sealing.sealed_key_id(
                sealed_key
            )
        except sealing.UnknownSealingKeyError as exc:
            wanted = exc.key_id
            keys = self._reload(exc, wanted, lambda k: wanted in k.opener.key_ids)
            return keys.opener.open_key(sealed_key, application_id), wanted

    def _open_pan(
        self, application: ApplicationSubmitted, row: Callable[[], DataKeyRow | None]
    ) -> tuple[str, str]:
        """The PAN and the key id that opened it; PoisonRecordError when it never will.
        `row` reads the application's sealed data key (not needed for a legacy ciphertext)."""
        application_id = application.application_id
        try:
            blob = from_transport(application.pan_encrypted)
            if sealing.field_version(blob) == sealing.LEGACY_PAN_VERSION:
                return self._open_legacy(blob, application_id)
            data_key, key_id = self._open_data_key(application_id, row())
            pan = sealing.open_field(data_key, "pan", blob, application_id)
            return pan.decode("ascii"), key_id
        except (PanDecryptionError, sealing.OpenError) as exc:
            raise PoisonRecordError(f"PAN cannot be decrypted: {exc}") from exc

    def apply(self, conn: psycopg.Connection[Any], command: ScoreApplication) -> AfterCommit:
        audited, row, committed = self._score(
            command, lambda: data_key_row(conn, command.application.application_id)
        )
        insert_report(conn, audited, row)
        return committed

    def apply_batch(
        self, conn: psycopg.Connection[Any], commands: Sequence[ScoreApplication]
    ) -> list[AfterCommit]:
        """As `apply` on each command in order, in two statements (credit_service.records).
        A record that fails raises, and the runtime's careful path applies them one by one."""
        rows = data_key_rows(conn, [c.application.application_id for c in commands])
        scored = [
            self._score(command, partial(rows.get, command.application.application_id))
            for command in commands
        ]
        insert_reports(conn, [(audited, row) for audited, row, _ in scored])
        return [committed for _, _, committed in scored]

    def _score(
        self, command: ScoreApplication, data_key: Callable[[], DataKeyRow | None]
    ) -> tuple[audit.AuditEntry, outbox.OutboxRow, AfterCommit]:
        """The report's audit row, its outbox row and what to do after the commit."""
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
            pan, key_id = self._open_pan(application, data_key)
        except PoisonRecordError as exc:
            # On file even though the record's own effects roll back: failed, or refused when
            # the data was erased on purpose.
            exc.audit = exc.audit or replace(
                audited,
                key_id=_key_id_or_none(application.pan_encrypted),
                outcome="refused" if isinstance(exc, PersonalDataErasedError) else "failed",
            )
            raise
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

        def committed() -> None:
            self.metrics.scores.observe(score)
            self.metrics.reports.inc()
            log.debug(
                "credit report %s written (score %d)",
                row.id,
                score,
                extra={"application_id": str(application.application_id)},
            )

        return replace(audited, key_id=key_id), row, committed


def _key_id_or_none(transported: str) -> str | None:
    """The key id a ciphertext names, if it is well-formed enough to name one."""
    try:
        return Keyring.key_id_of(from_transport(transported))
    except (PanDecryptionError, ValueError):
        return None
