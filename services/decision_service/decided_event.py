"""`loan.application.decided.v1`: the decision, written through the outbox in its transaction.

The event is one more outbox row beside the decision's own rows, so it exists exactly when the
application is final (the publisher sends it to `loan_applications_decided`, keyed by the
application id). It carries no personal data: reason codes without their texts (which quote
the score and the income), the offer, the policy version. The same transaction sends a
`NOTIFY application_decided` with the application id, which wakes the API's long-polling
status readers (`?wait=N`) at commit; a listener-less NOTIFY costs one small queue entry.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from decision_service.rules import Decision
from prequal.events import APPLICATION_DECIDED, format_time
from prequal.outbox import INSERT_ROWS_SQL, OutboxRow, rows_param

DECIDED_CHANNEL = "application_decided"
# One statement for a whole batch: the rows go in as one JSON array, and a NOTIFY per
# application id follows (a data-modifying CTE runs whether or not the query reads it). The
# outbox trigger then fires once per batch, not once per decision.
WRITE_SQL = (
    f"WITH event AS ({INSERT_ROWS_SQL}) "  # noqa: S608 - constants only; values are parameters
    "SELECT pg_notify(%s, application_id) FROM unnest(%s::text[]) AS application_id"
)


def decided_payload(
    application_id: uuid.UUID, client_id: str, decision: Decision, decided_at: datetime
) -> dict[str, Any]:
    return {
        "application_id": str(application_id),
        "client_id": client_id,
        "status": decision.status.value,
        "reason_codes": [code.value for code in decision.reason_codes],
        "offer": None if decision.offer is None else decision.offer.as_json(),
        "policy_version": decision.policy_version,
        "decided_at": format_time(decided_at),
    }


def write_decided_events(
    conn: psycopg.Connection[Any],
    topic: str,
    decided: Sequence[tuple[uuid.UUID, str, Decision, datetime]],
) -> None:
    """One outbox row and one wake-up per decision (application id, owning client, decision,
    time), inside the caller's transaction, in one statement."""
    if not decided:
        return
    rows = [
        OutboxRow.new(
            topic,
            APPLICATION_DECIDED,
            application_id,
            json.dumps(decided_payload(application_id, client_id, decision, decided_at)),
        )
        for application_id, client_id, decision, decided_at in decided
    ]
    conn.execute(
        WRITE_SQL, (rows_param(rows), DECIDED_CHANNEL, [str(row.aggregate_id) for row in rows])
    )
