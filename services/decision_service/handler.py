"""Deciding one application from its credit report, with optimistic locking.

Only a `PENDING` application moves, and only to a final status: the update names the version it
read and `status = 'PENDING'`, so a concurrent writer makes it match nothing; the handler then
reads the row again and retries (a bounded number of times). An application that is already
final is left as it is.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter

from decision_service.policy import DecisionPolicy
from decision_service.rules import Applicant, Decision, FinalStatus, decide
from prequal.consumer import AfterCommit, PoisonRecordError
from prequal.events import (
    CREDIT_REPORT_GENERATED,
    CloudEventAttributes,
    CreditReportGenerated,
    parse_payload,
)
from prequal.kafka import InboundRecord

log = logging.getLogger(__name__)

# Income, amount and loan type come from the application's own row, never from the event.
SELECT_SQL = (
    "SELECT status, version, monthly_income, requested_amount, loan_type "
    "FROM applications WHERE id = %s"
)
UPDATE_SQL = (
    "UPDATE applications SET status = %s, credit_score = %s, decision_reason = %s, "
    "max_approved_amount = %s, version = version + 1, updated_at = now() "
    "WHERE id = %s AND version = %s AND status = 'PENDING'"
)
# The policy's text under its version, once per process (and harmless when already there).
STORE_POLICY_SQL = (
    "INSERT INTO policy_documents (version, document) VALUES (%s, %s) "
    "ON CONFLICT (version) DO NOTHING"
)
CHECK_POLICY_SQL = "SELECT document FROM policy_documents WHERE version = %s"
INSERT_DECISION_SQL = (
    "INSERT INTO decisions (application_id, status, reason_codes, reasons, policy_version, "
    "trace, offer_amount, offer_term_months, offer_annual_rate, offer_processing_fee, "
    "offer_apr, offer_emi, offer_currency, offer_expires_at, decided_at) "
    "VALUES (%s, %s, %s, %s::jsonb, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


class UnknownApplicationError(PoisonRecordError):
    """The report names an application the database does not hold."""


class VersionConflictError(Exception):
    """Every re-read lost the race: the runtime retries the record, then dead-letters it."""


class PolicyVersionCollisionError(Exception):
    """Another policy text is stored under this policy's version: no decision may cite it."""


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
        self,
        policy: DecisionPolicy,
        metrics: DecisionMetrics,
        version_retries: int = 5,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy = policy
        self.metrics = metrics
        self.version_retries = version_retries
        self.clock = clock
        self._policy_stored = False

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
        for _attempt in range(self.version_retries):
            row = conn.execute(SELECT_SQL, (report.application_id,)).fetchone()
            if row is None:
                raise UnknownApplicationError(f"application {report.application_id} does not exist")
            status, version, monthly_income, requested_amount, loan_type = row
            if status != "PENDING":
                return self._ignored(report.application_id, status)
            applicant = Applicant(
                credit_score=report.credit_score,
                monthly_income=Decimal(monthly_income),
                requested_amount=Decimal(requested_amount),
                loan_type=str(loan_type),
            )
            decided_at = self.clock()
            decision = decide(applicant, self.policy, decided_at)
            if self._update(conn, report.application_id, version, report.credit_score, decision):
                self._store_policy(conn)
                self._record(conn, report.application_id, decision, decided_at)
                return self._committed(report.application_id, decision)
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

    def _store_policy(self, conn: psycopg.Connection[Any]) -> None:
        if self._policy_stored:
            return
        conn.execute(STORE_POLICY_SQL, (self.policy.version, self.policy.text))
        stored = conn.execute(CHECK_POLICY_SQL, (self.policy.version,)).fetchone()
        if stored is None or stored[0] != self.policy.text:
            raise PolicyVersionCollisionError(
                f"policy_documents holds another text under version {self.policy.version}; "
                "compare it with this policy before deciding anything"
            )

    @staticmethod
    def _record(
        conn: psycopg.Connection[Any],
        application_id: uuid.UUID,
        decision: Decision,
        decided_at: datetime,
    ) -> None:
        offer = decision.offer
        terms: tuple[object, ...] = (None,) * 8
        if offer is not None:
            terms = (
                offer.amount,
                offer.term_months,
                offer.annual_rate,
                offer.processing_fee,
                offer.apr,
                offer.emi,
                offer.currency,
                offer.expires_at,
            )
        conn.execute(
            INSERT_DECISION_SQL,
            (
                application_id,
                decision.status.value,
                [code.value for code in decision.reason_codes],
                json.dumps([r.as_json() for r in decision.reasons]),
                decision.policy_version,
                json.dumps([rule.as_json() for rule in decision.trace]),
                *terms,
                decided_at,
            ),
        )

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
            self._policy_stored = True
            self.metrics.decided.labels(decision.status.value).inc()
            log.info(
                "decided %s (%s) under policy %s",
                decision.status.value,
                ", ".join(decision.reason_codes),
                decision.policy_version,
                extra={"application_id": str(application_id)},
            )

        return committed
