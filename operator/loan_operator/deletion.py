"""Deleting a LoanPipeline: what goes with it, what goes after it, what never goes.

Nothing holds the object: no finalizer, so deleting a pipeline (or its namespace) completes at
once whether the operator runs and Kafka answers or not (DESIGN.md: deletion never hangs a
namespace).

- **Kafka access, best effort** (when the operator manages principals, i.e. its own connection
  is SASL): once the watch reports the object gone, its worker calls `remove_access`, one
  attempt: the pipeline's SCRAM users and every ACL naming them are deleted and a Normal Event
  `KafkaAccessRemoved` says so. Kafka unreachable or refusing, or the operator not running at
  the time: a log line, and the orphan sweep (orphan_sweep.py) removes them at its next pass
  that reaches that Kafka. The credentials Secrets follow through their ownerReference (the
  garbage collector).
- **Topics, after** (`remove_topics`): only with `deletionPolicy: Delete`, bounded retries, a
  Warning Event `TopicDeletionFailed` on giving up.
- **Never**: the key Secrets (no ownerReference; the rows they encrypt outlive the pipeline).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from loan_operator.kafka_admin import KafkaAdmin
from loan_operator.kafka_errors import KafkaRequestFailed, KafkaUnreachable
from loan_operator.kafka_principals import KafkaPrincipals
from loan_operator.kube import PipelineRef
from loan_operator.metrics import Metrics
from loan_operator.reporting import Reporter
from loan_operator.spec import PipelineSpec
from loan_operator.topics import desired_topics

log = logging.getLogger("loan_operator")


class PipelineDeletion:
    def __init__(
        self,
        kafka: Callable[[str], KafkaAdmin],
        metrics: Metrics,
        report: Reporter,
        principals: KafkaPrincipals,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.kafka = kafka
        self.metrics = metrics
        self.report = report
        self.principals = principals
        self.sleep = sleep

    # --- when the object is gone: Kafka users and ACLs, best effort ---------------------------
    def remove_access(self, ref: PipelineRef, spec: PipelineSpec) -> bool:
        """One attempt at removing the pipeline's SCRAM users and their ACLs; False when Kafka
        did not let it (the orphan sweep will). Never raises for Kafka."""
        if not self.principals.enabled:
            return True
        bootstrap = spec.kafka.bootstrap_servers
        try:
            deleted, revoked = self.principals.remove(ref, self.kafka(bootstrap))
        except (KafkaUnreachable, KafkaRequestFailed) as exc:
            log.warning(
                "%s/%s deleted; its Kafka users stay on %s until the orphan sweep reaches it: %s",
                ref.namespace,
                ref.name,
                bootstrap,
                exc,
            )
            return False
        if deleted or revoked:
            self.report.changed(
                ref,
                "KafkaAccessRemoved",
                f"SCRAM users {', '.join(deleted) or '(none)'} and {revoked} ACLs naming "
                f"{', '.join(self.principals.users(ref))} removed from {bootstrap}",
            )
        return True

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
