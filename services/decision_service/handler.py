"""Deciding one application from its credit report, with optimistic locking.

Only a `PENDING` application moves, and only to a final status: the update names the version it
read and `status = 'PENDING'`, so a concurrent writer makes it match nothing; the handler then
reads the row again and retries (a bounded number of times). An application that is already
final is left as it is.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter

from decision_service.decided_event import write_decided_event
from decision_service.policy import DecisionPolicy
from decision_service.records import insert_decision, insert_shadow, store_policy
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

# Income, amount and loan type come from the application's own row, never from the event;
# `recent_application_elsewhere` is set by the API when another client submitted the same PAN
# in the last 24 hours (the policy then rejects with RECENT_APPLICATION_EXISTS, whatever the score).
SELECT_SQL = (
    "SELECT status, version, monthly_income, requested_amount, loan_type, "
    "recent_application_elsewhere, client_id FROM applications WHERE id = %s"
)
UPDATE_SQL = (
    "UPDATE applications SET status = %s, credit_score = %s, decision_reason = %s, "
    "max_approved_amount = %s, version = version + 1, updated_at = now(), "
    # A final status ends any processing issue (a replay that succeeded).
    "processing_issue_code = NULL, processing_issue_message = NULL, "
    "processing_issue_since = NULL "
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
        # Per policy version: the champion's decisions and the challenger's shadow ones, so the
        # business dashboard shows approval rates of both and how often they agree.
        self.by_policy = Counter(
            "decisions_by_policy",
            "Decisions per policy version; role champion (applied) or challenger (shadow)",
            ["policy_version", "role", "status"],
            registry=registry,
        )
        self.shadow = Counter(
            "shadow_decisions",
            "Challenger decisions, by whether they agree with the champion's status",
            ["champion_version", "challenger_version", "agreement"],
            registry=registry,
        )

    def expect(self, champion: DecisionPolicy, challenger: DecisionPolicy | None) -> None:
        """Exports the policies' series at 0 before their first decision, so the ratios on the
        dashboard exist (and read 0) rather than being absent."""
        for status in FinalStatus:
            self.by_policy.labels(champion.version, "champion", status.value)
            if challenger is not None:
                self.by_policy.labels(challenger.version, "challenger", status.value)
        if challenger is not None:
            for agreement in ("agree", "disagree"):
                self.shadow.labels(champion.version, challenger.version, agreement)

    def count(self, decision: Decision, shadow: Decision | None) -> None:
        self.decided.labels(decision.status.value).inc()
        self.by_policy.labels(decision.policy_version, "champion", decision.status.value).inc()
        if shadow is not None:
            self.by_policy.labels(shadow.policy_version, "challenger", shadow.status.value).inc()
            agreement = "agree" if shadow.status is decision.status else "disagree"
            self.shadow.labels(decision.policy_version, shadow.policy_version, agreement).inc()


@dataclass(frozen=True)
class DecideApplication:
    report: CreditReportGenerated


class DecisionHandler:
    def __init__(
        self,
        policy: DecisionPolicy,
        metrics: DecisionMetrics,
        version_retries: int = 5,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        challenger: DecisionPolicy | None = None,
        decided_topic: str = "loan_applications_decided",
    ) -> None:
        self.policy = policy
        self.decided_topic = decided_topic
        self.challenger = challenger
        self.metrics = metrics
        self.version_retries = version_retries
        self.clock = clock
        self._policies_stored = False
        metrics.expect(policy, challenger)

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
            status, version, monthly_income, requested_amount, loan_type, recent_elsewhere = row[:6]
            client_id = str(row[6])
            if status != "PENDING":
                return self._ignored(report.application_id, status)
            applicant = Applicant(
                credit_score=report.credit_score,
                monthly_income=Decimal(monthly_income),
                requested_amount=Decimal(requested_amount),
                loan_type=str(loan_type),
                recent_application_elsewhere=bool(recent_elsewhere),
            )
            decided_at = self.clock()
            decision = decide(applicant, self.policy, decided_at)
            if self._update(conn, report.application_id, version, report.credit_score, decision):
                self._store_policies(conn)
                insert_decision(conn, report.application_id, decision, decided_at)
                write_decided_event(
                    conn, self.decided_topic, report.application_id, client_id, decision, decided_at
                )
                shadow = None
                if self.challenger is not None:
                    shadow = decide(applicant, self.challenger, decided_at)
                    insert_shadow(conn, report.application_id, shadow, decision, decided_at)
                return self._committed(report.application_id, decision, shadow)
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

    def _store_policies(self, conn: psycopg.Connection[Any]) -> None:
        """The texts of the policies in use, before the first decision that cites them."""
        if self._policies_stored:
            return
        store_policy(conn, self.policy)
        if self.challenger is not None:
            store_policy(conn, self.challenger)

    def _ignored(self, application_id: uuid.UUID, status: str) -> AfterCommit:
        def committed() -> None:
            self.metrics.already_final.inc()
            log.info(
                "application is already %s; report ignored",
                status,
                extra={"application_id": str(application_id)},
            )

        return committed

    def _committed(
        self, application_id: uuid.UUID, decision: Decision, shadow: Decision | None
    ) -> AfterCommit:
        def committed() -> None:
            self._policies_stored = True
            self.metrics.count(decision, shadow)
            log.info(
                "decided %s (%s) under policy %s",
                decision.status.value,
                ", ".join(decision.reason_codes),
                decision.policy_version,
                extra={"application_id": str(application_id)},
            )

        return committed
