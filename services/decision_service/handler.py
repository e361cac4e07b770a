"""Deciding applications from their credit reports, with optimistic locking.

Only a `PENDING` application moves, and only to a final status: the update names the version it
read and `status = 'PENDING'`, so a concurrent writer makes it match nothing; the handler then
reads the row again and retries (a bounded number of times). An application that is already
final is left as it is.

A batch of reports costs three statements, whatever its size: one SELECT of every application,
one UPDATE of all of them, one INSERT of their decisions (and shadow decisions); a record by
record handler spent three per report, and the statements, not the rules, were most of this
service's CPU (README, Measurements). Only the reports that lost a race are read again.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter

from decision_service.decided_event import write_decided_events
from decision_service.policy import DecisionPolicy
from decision_service.records import Row, decision_row, insert_decisions, shadow_row, store_policy
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
    "SELECT id, status, version, monthly_income, requested_amount, loan_type, "
    "recent_application_elsewhere, client_id FROM applications WHERE id = ANY(%s::uuid[])"
)
# Every update of a batch in one statement; it returns the ids it moved. An id it did not move
# lost an optimistic-lock race (its version or status changed since the SELECT).
UPDATE_SQL = (
    "UPDATE applications SET status = v.status, credit_score = v.credit_score, "
    "decision_reason = v.decision_reason, max_approved_amount = v.max_approved_amount, "
    "version = applications.version + 1, updated_at = now(), "
    # A final status ends any processing issue (a replay that succeeded).
    "processing_issue_code = NULL, processing_issue_message = NULL, "
    "processing_issue_since = NULL "
    "FROM jsonb_to_recordset(%s::jsonb) AS v(id uuid, version integer, status text, "
    "credit_score integer, decision_reason text, max_approved_amount numeric) "
    "WHERE applications.id = v.id AND applications.version = v.version "
    "AND applications.status = 'PENDING' RETURNING applications.id"
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


@dataclass(frozen=True)
class _Made:
    """A decision made from the row as read, not written yet."""

    report: CreditReportGenerated
    version: int
    applicant: Applicant
    decision: Decision
    decided_at: datetime
    client_id: str

    @property
    def application_id(self) -> uuid.UUID:
        return self.report.application_id


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
        return self._decide_all(conn, [command.report], self.version_retries)[0]

    def apply_batch(
        self, conn: psycopg.Connection[Any], commands: Sequence[DecideApplication]
    ) -> list[AfterCommit]:
        ids = [command.report.application_id for command in commands]
        if len(set(ids)) < len(ids):
            # One application twice: the second report must see the first one's effect.
            return [self._decide_all(conn, [c.report], self.version_retries)[0] for c in commands]
        return self._decide_all(
            conn, [command.report for command in commands], self.version_retries
        )

    def _decide_all(
        self, conn: psycopg.Connection[Any], reports: list[CreditReportGenerated], attempts: int
    ) -> list[AfterCommit]:
        """Decides distinct applications; reads again those that lost a race, `attempts` times
        in all."""
        rows = {
            row[0]: row for row in conn.execute(SELECT_SQL, ([r.application_id for r in reports],))
        }
        done: dict[uuid.UUID, AfterCommit] = {}
        made: list[_Made] = []
        for report in reports:
            row = rows.get(report.application_id)
            if row is None:
                raise UnknownApplicationError(f"application {report.application_id} does not exist")
            _id, status, version, monthly_income, requested_amount, loan_type, elsewhere = row[:7]
            client_id = str(row[7])
            if status != "PENDING":
                done[report.application_id] = self._ignored(report.application_id, status)
                continue
            applicant = Applicant(
                credit_score=report.credit_score,
                monthly_income=Decimal(monthly_income),
                requested_amount=Decimal(requested_amount),
                loan_type=str(loan_type),
                recent_application_elsewhere=bool(elsewhere),
            )
            decided_at = self.clock()
            decision = decide(applicant, self.policy, decided_at)
            made.append(_Made(report, version, applicant, decision, decided_at, client_id))
        moved = self._update(conn, made)
        if any(m.application_id in moved for m in made):
            self._record(conn, [m for m in made if m.application_id in moved], done)
        lost = [m.report for m in made if m.application_id not in moved]
        for m in made:
            if m.application_id not in moved:
                self.metrics.conflicts.inc()
                log.info(
                    "version %d of the application changed under us; reading it again",
                    m.version,
                    extra={"application_id": str(m.application_id)},
                )
        if lost:
            if attempts <= 1:
                raise VersionConflictError(
                    f"application {lost[0].application_id} changed {self.version_retries} times "
                    "in a row"
                )
            done.update(
                zip(
                    (r.application_id for r in lost),
                    self._decide_all(conn, lost, attempts - 1),
                    strict=True,
                )
            )
        return [done[report.application_id] for report in reports]

    @staticmethod
    def _update(conn: psycopg.Connection[Any], made: list[_Made]) -> set[uuid.UUID]:
        """The ids the one UPDATE moved to their final status."""
        if not made:
            return set()
        rows = [
            {
                "id": str(m.application_id),
                "version": m.version,
                "status": m.decision.status.value,
                "credit_score": m.report.credit_score,
                "decision_reason": m.decision.reason,
                "max_approved_amount": (
                    None
                    if m.decision.max_approved_amount is None
                    else str(m.decision.max_approved_amount)
                ),
            }
            for m in made
        ]
        return {row[0] for row in conn.execute(UPDATE_SQL, (json.dumps(rows),))}

    def _record(
        self,
        conn: psycopg.Connection[Any],
        decided: list[_Made],
        done: dict[uuid.UUID, AfterCommit],
    ) -> None:
        """The decisions of the applications that moved, and the challenger's beside them."""
        self._store_policies(conn)
        rows: list[Row] = []
        shadows: list[Row] | None = None if self.challenger is None else []
        for m in decided:
            rows.append(decision_row(m.application_id, m.decision, m.decided_at))
            shadow = None
            if self.challenger is not None and shadows is not None:
                shadow = decide(m.applicant, self.challenger, m.decided_at)
                shadows.append(shadow_row(m.application_id, shadow, m.decision, m.decided_at))
            done[m.application_id] = self._committed(m.application_id, m.decision, shadow)
        insert_decisions(conn, rows, shadows)
        write_decided_events(
            conn,
            self.decided_topic,
            [(m.application_id, m.client_id, m.decision, m.decided_at) for m in decided],
        )

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
