"""Deciding one application from its credit report, with optimistic locking.

Only a `PENDING` application moves, and only to a final status: the update names the version it
read and `status = 'PENDING'`, so a concurrent writer makes it match nothing; the handler then
reads the row again and retries (a bounded number of times). An application that is already
final is left as it is.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter

from decision_service.rules import Decision, DecisionPolicy, FinalStatus, decide
from prequal.consumer import AfterCommit, PoisonRecordError
from prequal.events import (
    CREDIT_REPORT_GENERATED,
    CloudEventAttributes,
    CreditReportGenerated,
    parse_payload,
)
from prequal.kafka import InboundRecord

log = logging.getLogger(__name__)

SELECT_SQL = "SELECT status, version, recent_application_elsewhere FROM applications WHERE id = %s"
# Another client submitted the PAN in the last 24 h (flagged by the API at submission): the
# application is rejected before the rules run, whatever the score.
RECENT_APPLICATION_EXISTS = Decision(
    FinalStatus.REJECTED,
    "RECENT_APPLICATION_EXISTS: an application for this PAN was submitted in the last 24 hours.",
)
UPDATE_SQL = (
    "UPDATE applications SET status = %s, credit_score = %s, decision_reason = %s, "
    "max_approved_amount = %s, version = version + 1, updated_at = now() "
    "WHERE id = %s AND version = %s AND status = 'PENDING'"
)


class UnknownApplicationError(PoisonRecordError):
    """The report names an application the database does not hold."""


class VersionConflictError(Exception):
    """Every re-read lost the race: the runtime retries the record, then dead-letters it."""


class DecisionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decided = Counter(
            "applications_decided",
            "Applications moved from PENDING to a final status",
            ["status"],
            registry=registry,
        )
        for status in FinalStatus:
            self.decided.labels(status.value)  # exported at 0 until the first decision
        self.conflicts = Counter(
            "decision_version_conflicts",
            "Updates that lost an optimistic-lock race and re-read the application",
            registry=registry,
        )
        self.already_final = Counter(
            "decision_already_final",
            "Reports for applications that were already final (left unchanged)",
            registry=registry,
        )


@dataclass(frozen=True)
class DecideApplication:
    report: CreditReportGenerated


class DecisionHandler:
    def __init__(
        self, policy: DecisionPolicy, metrics: DecisionMetrics, version_retries: int = 5
    ) -> None:
        self.policy = policy
        self.metrics = metrics
        self.version_retries = version_retries

    def decode(self, event: CloudEventAttributes, record: InboundRecord) -> DecideApplication:
        if event.type != CREDIT_REPORT_GENERATED:
            raise PoisonRecordError(f"unexpected event type {event.type!r} on {record.topic}")
        payload = parse_payload(event.type, record.value or b"")
        assert isinstance(payload, CreditReportGenerated)
        if record.key != str(payload.application_id).encode():
            raise PoisonRecordError("record key does not match the payload's application_id")
        return DecideApplication(payload)

    def apply(
        self, conn: psycopg.Connection[Any], command: DecideApplication
    ) -> AfterCommit | None:
        report = command.report
        decision = decide(
            report.credit_score, report.monthly_income, report.requested_amount, self.policy
        )
        for _attempt in range(self.version_retries):
            row = conn.execute(SELECT_SQL, (report.application_id,)).fetchone()
            if row is None:
                raise UnknownApplicationError(f"application {report.application_id} does not exist")
            status, version, recent_elsewhere = row
            if status != "PENDING":
                return self._ignored(report.application_id, status)
            final = RECENT_APPLICATION_EXISTS if recent_elsewhere else decision
            if self._update(conn, report.application_id, version, report.credit_score, final):
                return self._committed(report.application_id, final)
            self.metrics.conflicts.inc()
            log.info(
                "version %d of the application changed under us; reading it again",
                version,
                extra={"application_id": str(report.application_id)},
            )
        raise VersionConflictError(
            f"application {report.application_id} changed {self.version_retries} times in a row"
        )

    @staticmethod
    def _update(
        conn: psycopg.Connection[Any],
        application_id: uuid.UUID,
        version: int,
        score: int,
        decision: Decision,
    ) -> bool:
        cursor = conn.execute(
            UPDATE_SQL,
            (
                decision.status.value,
                score,
                decision.reason,
                decision.max_approved_amount,
                application_id,
                version,
            ),
        )
        return cursor.rowcount == 1

    def _ignored(self, application_id: uuid.UUID, status: str) -> AfterCommit:
        def committed() -> None:
            self.metrics.already_final.inc()
            log.info(
                "application is already %s; report ignored",
                status,
                extra={"application_id": str(application_id)},
            )

        return committed

    def _committed(self, application_id: uuid.UUID, decision: Decision) -> AfterCommit:
        def committed() -> None:
            self.metrics.decided.labels(decision.status.value).inc()
            log.info(
                "decided %s",
                decision.status.value,
                extra={"application_id": str(application_id)},
            )

        return committed
