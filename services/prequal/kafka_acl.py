"""Who may do what on a pipeline's topics: DESIGN.md's topology as data, for the ACLs.

The outbox publisher produces every outbox event (applications submitted, credit reports,
decisions); each consumer reads only its own topic in its own group and writes only its own
DLQ; prequalctl reads the DLQs and replays a record to the topic it came from. Nobody else
may produce or consume. The operator (and the local admin) are super users: they create the
topics, the principals and these grants. The API is not a Kafka client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from prequal.dlq import dlq_topic

PUBLISHER = "publisher"
CREDIT_SERVICE = "credit-service"
DECISION_SERVICE = "decision-service"
WEBHOOK_DISPATCHER = "webhook-dispatcher"
PREQUALCTL = "prequalctl"
CONSUMERS = (CREDIT_SERVICE, DECISION_SERVICE, WEBHOOK_DISPATCHER)
# Every Kafka principal of a pipeline but the super user (operator / admin).
SERVICE_PRINCIPALS = (PUBLISHER, *CONSUMERS, PREQUALCTL)
# The group id prequalctl reads DLQs under (assigned partitions: it never commits).
READER_GROUP = "prequalctl-reader"

Resource = Literal["TOPIC", "GROUP"]
Operation = Literal["READ", "WRITE"]


@dataclass(frozen=True)
class PipelineTopics:
    """A pipeline's full topic names (prefix applied)."""

    submitted: str
    reports: str
    decided: str

    @classmethod
    def prefixed(cls, prefix: str = "") -> PipelineTopics:
        return cls(
            f"{prefix}loan_applications_submitted",
            f"{prefix}credit_reports_generated",
            f"{prefix}loan_applications_decided",
        )

    def consumed_by(self, role: str) -> str:
        return {
            CREDIT_SERVICE: self.submitted,
            DECISION_SERVICE: self.reports,
            WEBHOOK_DISPATCHER: self.decided,
        }[role]

    def all(self) -> tuple[str, str, str]:
        return (self.submitted, self.reports, self.decided)


@dataclass(frozen=True, order=True)
class Grant:
    """ALLOW `principal` (a SCRAM user name) `operation` on a literal resource, from any host."""

    principal: str
    resource: Resource
    name: str
    operation: Operation


def pipeline_grants(
    topics: PipelineTopics,
    users: Mapping[str, str] | None = None,
    groups: Mapping[str, str] | None = None,
) -> list[Grant]:
    """Every grant a pipeline needs. `users` maps a role to its SCRAM user name and `groups` a
    consumer role to its group id (both default to the role's name)."""
    user = {role: role for role in SERVICE_PRINCIPALS} | dict(users or {})
    group = {role: role for role in CONSUMERS} | dict(groups or {})
    grants = [Grant(user[PUBLISHER], "TOPIC", topic, "WRITE") for topic in topics.all()]
    for role in CONSUMERS:
        topic = topics.consumed_by(role)
        grants += [
            Grant(user[role], "TOPIC", topic, "READ"),
            Grant(user[role], "GROUP", group[role], "READ"),
            Grant(user[role], "TOPIC", dlq_topic(topic), "WRITE"),
        ]
    for topic in topics.all():
        grants += [
            Grant(user[PREQUALCTL], "TOPIC", dlq_topic(topic), "READ"),
            Grant(user[PREQUALCTL], "TOPIC", topic, "WRITE"),  # `prequalctl dlq replay`
        ]
    grants.append(Grant(user[PREQUALCTL], "GROUP", READER_GROUP, "READ"))
    return sorted(set(grants))
