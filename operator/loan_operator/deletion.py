"""Deleting a LoanPipeline: what goes before it, what goes after it, what never goes.

- **Kafka access, before** (when the operator manages principals, i.e. its own connection is
  SASL): kopf's on.delete handler (handlers.py) holds the finalizer `prequal.dev/kafka-access`
  until `remove_access` has deleted the pipeline's SCRAM users and every ACL naming them and the
  broker lists none: a deleted pipeline's identities stop working before the object is gone.
  Kafka unreachable or refusing: the deletion waits, retried with backoff, with one Warning
  Event `KafkaCleanupBlocked` per reason saying what blocks it and the way out, the annotation
  `prequal.dev/skip-kafka-cleanup: "true"` (the users are then left, named in a Warning Event
  `KafkaCleanupSkipped`). The credentials Secrets follow through their ownerReference.
- **Topics, after** (`remove_topics`): once the watch reports the object gone, only with
  `deletionPolicy: Delete`, bounded retries, a Warning Event `TopicDeletionFailed` on giving up.
- **Never**: the key Secrets (no ownerReference; the rows they encrypt outlive the pipeline).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loan_operator.backoff import backoff
from loan_operator.kafka_admin import KafkaAdmin
from loan_operator.kafka_errors import KafkaRequestFailed, KafkaUnreachable
from loan_operator.kafka_principals import KafkaPrincipals
from loan_operator.kube import PipelineRef
from loan_operator.metrics import Metrics
from loan_operator.reporting import Reporter
from loan_operator.spec import PipelineSpec, parse_spec
from loan_operator.topics import desired_topics

log = logging.getLogger("loan_operator")

SKIP_ANNOTATION = "prequal.dev/skip-kafka-cleanup"
# How many times (every 0.5 s) to look for the deletions to reach the broker answering before
# reporting them pending and retrying through kopf.
PROPAGATION_CHECKS = 6


@dataclass(frozen=True)
class Blocked:
    """Why the Kafka cleanup cannot finish yet; `retry_in` overrides the backoff."""

    reason: str
    message: str
    retry_in: float | None = None


class PipelineDeletion:
    def __init__(
        self,
        kafka: Callable[[str], KafkaAdmin],
        metrics: Metrics,
        report: Reporter,
        principals: KafkaPrincipals,
        *,
        max_backoff: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.kafka = kafka
        self.metrics = metrics
        self.report = report
        self.principals = principals
        self.max_backoff = max_backoff
        self.sleep = sleep
        self._blocked: dict[str, str] = {}  # uid → the reason last reported
        self._lock = threading.Lock()

    @property
    def guards_access(self) -> bool:
        """Whether deletion must wait for the Kafka cleanup (a finalizer is worth having)."""
        return self.principals.enabled

    def retry_delay(self, blocked: Blocked, attempts: int) -> float:
        return (
            blocked.retry_in
            if blocked.retry_in is not None
            else backoff(attempts, self.max_backoff)
        )

    # --- before the object goes: Kafka users and ACLs -----------------------------------------
    def remove_access(self, body: Mapping[str, Any]) -> Blocked | None:
        """The pipeline's SCRAM users and ACLs gone from its cluster (None), or why not yet."""
        meta = body["metadata"]
        ref = PipelineRef(meta["namespace"], meta["name"], meta["uid"])
        if not self.principals.enabled:
            return None
        try:
            spec = parse_spec(body.get("spec") or {})
        except (KeyError, TypeError, ValueError) as exc:
            # Never converged, so no user was ever made for it.
            log.warning("%s/%s: unusable spec, no Kafka cleanup: %r", ref.namespace, ref.name, exc)
            return None
        bootstrap = spec.kafka.bootstrap_servers
        users = ", ".join(self.principals.users(ref))
        if (meta.get("annotations") or {}).get(SKIP_ANNOTATION) == "true":
            self.report.event(
                ref,
                "KafkaCleanupSkipped",
                f"{SKIP_ANNOTATION}=true: SCRAM users {users} and their ACLs are left on "
                f"{bootstrap}; remove them by hand",
                warning=True,
            )
            self._forget(ref)
            return None
        blocked = self._clean(ref, bootstrap, users)
        if blocked is not None:
            return self._block(ref, blocked)
        self._forget(ref)
        return None

    def _clean(self, ref: PipelineRef, bootstrap: str, users: str) -> Blocked | None:
        admin = self.kafka(bootstrap)
        way_out = (
            f"the LoanPipeline is kept until they are removed (retrying with backoff); to delete "
            f"it and leave them, annotate it {SKIP_ANNOTATION}=true"
        )
        try:
            self.principals.remove(ref, admin)
            left_users, left_acls = self.principals.remaining(ref, admin)
            # Deleted a moment ago: the broker answering applies it from the metadata log.
            for _ in range(PROPAGATION_CHECKS):
                if not (left_users or left_acls):
                    break
                self.sleep(0.5)
                left_users, left_acls = self.principals.remaining(ref, admin)
        except KafkaUnreachable as exc:
            return Blocked(
                "KafkaUnreachable",
                f"cannot remove the Kafka users {users}: {bootstrap}: {exc}; {way_out}",
            )
        except KafkaRequestFailed as exc:
            return Blocked(
                "KafkaCleanupFailed",
                f"the broker refused removing the Kafka users {users}: {exc}; {way_out}",
            )
        if left_users or left_acls:
            return Blocked(
                "KafkaCleanupPending",
                f"{len(left_users)} users and {left_acls} ACLs still listed by the broker",
                retry_in=1.0,
            )
        self.report.changed(
            ref,
            "KafkaAccessRemoved",
            f"SCRAM users {users} and every ACL naming them removed from {bootstrap}",
        )
        return None

    def _block(self, ref: PipelineRef, blocked: Blocked) -> Blocked:
        """A Warning Event and a log line when the reason changes, not on every retry."""
        with self._lock:
            changed = self._blocked.get(ref.uid) != blocked.reason
            self._blocked[ref.uid] = blocked.reason
        if changed and blocked.reason != "KafkaCleanupPending":
            log.warning("%s/%s deletion waits: %s", ref.namespace, ref.name, blocked.message)
            self.report.event(
                ref, "KafkaCleanupBlocked", f"{blocked.reason}: {blocked.message}", warning=True
            )
        return blocked

    def _forget(self, ref: PipelineRef) -> None:
        with self._lock:
            self._blocked.pop(ref.uid, None)

    # --- after the object is gone: topics --------------------------------------------------
    def remove_topics(self, ref: PipelineRef, spec: PipelineSpec, attempts: int = 3) -> None:
        """After the LoanPipeline is gone: delete its topics if its policy says so.

        Bounded: with Kafka unreachable it gives up after `attempts` tries and says so in a
        Warning Event — the resource is already gone, nothing waits on this.
        """
        for consumer in spec.consumers:
            self.metrics.forget_consumer(ref.namespace, ref.name, consumer.name)
        if spec.deletion_policy != "Delete":
            log.info(
                "%s/%s deleted; topics retained (deletionPolicy Retain)", ref.namespace, ref.name
            )
            return
        names = [t.name for t in desired_topics(spec.kafka)]
        for attempt in range(1, attempts + 1):
            try:
                deleted = self.kafka(spec.kafka.bootstrap_servers).delete_topics(names)
            except (KafkaUnreachable, KafkaRequestFailed) as exc:
                log.warning(
                    "%s/%s: deleting topics failed (attempt %d of %d): %s",
                    ref.namespace,
                    ref.name,
                    attempt,
                    attempts,
                    exc,
                )
                self.sleep(min(2**attempt, 10))
                continue
            self.report.changed(
                ref, "TopicsDeleted", f"deleted topics {', '.join(deleted) or '(none)'}"
            )
            return
        self.report.event(
            ref,
            "TopicDeletionFailed",
            f"gave up deleting topics {', '.join(names)}: Kafka "
            f"{spec.kafka.bootstrap_servers} unreachable; delete them by hand",
            warning=True,
        )
