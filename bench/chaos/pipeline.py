"""The LoanPipeline of the chaos run, and what must hold for it afterwards.

The pipeline is `make run`'s sample (manifests/samples/retail.yaml) with four partitions (the
rebalance storm's four credit-service instances get one each) and only the consumers the chaos
run has. It is applied as `make run` applies it (devstack.pipeline) and reconciled by the real
operator, which the schedule SIGKILLs. After the run:

- the pipeline is Ready again (within a bound after the drain);
- the Ready condition's lastTransitionTime never moved backwards (watched all through the run);
- no topic was recreated (Kafka's topic ids) and no Secret of the namespace was (their uids):
  a restarted operator adopts what exists and never regenerates a key.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient
from kubernetes import client, config

from devstack.pipeline import GROUP, PLURAL, VERSION, LocalPipeline, load_sample
from prequal.kafka_security import KafkaConnection

# Four partitions: the rebalance storm's four credit-service instances each get one.
PARTITIONS = 4
CONSUMERS = ("credit-service", "decision-service")


def chaos_pipeline(bootstrap: str) -> LocalPipeline:
    sample = load_sample(bootstrap)
    body = copy.deepcopy(sample.body)
    body["spec"]["kafka"]["partitions"] = PARTITIONS
    body["spec"]["consumers"] = [c for c in sample.consumers if c["name"] in CONSUMERS]
    return LocalPipeline(sample.namespace, sample.name, body)


def ready_condition(api: client.ApiClient, pipeline: LocalPipeline) -> dict[str, Any] | None:
    body: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, pipeline.namespace, PLURAL, pipeline.name
    )
    for condition in body.get("status", {}).get("conditions", []):
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


@dataclass(frozen=True)
class Identities:
    """Who the pipeline's topics and Secrets are: recreated, they get new ones."""

    topic_ids: dict[str, str]
    secret_uids: dict[str, str]

    @staticmethod
    def read(
        api: client.ApiClient, connection: KafkaConnection, pipeline: LocalPipeline
    ) -> Identities:
        admin = AdminClient(connection.config())
        names = [
            t
            for t in admin.list_topics(timeout=10).topics
            if t.startswith(pipeline.body["spec"]["kafka"]["topicPrefix"])
        ]
        described = admin.describe_topics(TopicCollection(names), request_timeout=10)
        secrets = client.CoreV1Api(api).list_namespaced_secret(pipeline.namespace)
        return Identities(
            topic_ids={name: str(future.result().topic_id) for name, future in described.items()},
            secret_uids={s.metadata.name: s.metadata.uid for s in secrets.items},
        )

    def recreated(self, now: Identities) -> tuple[list[str], list[str]]:
        """(topics, Secrets) that were here before and are now gone or someone else."""
        topics = [n for n, i in self.topic_ids.items() if now.topic_ids.get(n) != i]
        secrets = [n for n, u in self.secret_uids.items() if now.secret_uids.get(n) != u]
        return topics, secrets


@dataclass
class ReadyWatch:
    """Reads the Ready condition every `interval` seconds in a thread of its own, from the
    pipeline's first Ready to `stop()`, and remembers every lastTransitionTime it saw."""

    kubeconfig: str
    pipeline: LocalPipeline
    interval: float = 1.0
    seen: list[tuple[str, datetime]] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="ready-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        api = config.new_client_from_config(self.kubeconfig)
        try:
            while not self._stop.is_set():
                self.observe(api)
                self._stop.wait(self.interval)
        finally:
            api.close()

    def observe(self, api: client.ApiClient) -> None:
        try:
            ready = ready_condition(api, self.pipeline)
        except Exception:  # noqa: BLE001 - an unanswered read is counted, not fatal
            self.errors += 1
            return
        if ready is None:
            return
        since = datetime.fromisoformat(ready["lastTransitionTime"])
        if not self.seen or self.seen[-1] != (ready["status"], since):
            self.seen.append((ready["status"], since))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    @property
    def regressions(self) -> int:
        """Times the lastTransitionTime went back to an earlier moment."""
        return sum(1 for (_, a), (_, b) in zip(self.seen, self.seen[1:], strict=False) if b < a)

    @property
    def transitions(self) -> int:
        return len({since for _, since in self.seen}) - 1 if self.seen else 0


def wait_ready(
    api: client.ApiClient,
    pipeline: LocalPipeline,
    bound_s: float,
    operator_up: Callable[[], bool],
) -> float | None:
    """Seconds until the pipeline is Ready with its operator up (None if not within
    `bound_s`): a Ready left behind by an operator that is down proves nothing."""
    started = time.monotonic()
    while time.monotonic() - started < bound_s:
        try:
            ready = ready_condition(api, pipeline)
        except Exception:  # noqa: BLE001 - the API server is not under fault, but be patient
            ready = None
        if operator_up() and ready is not None and ready["status"] == "True":
            return time.monotonic() - started
        time.sleep(1.0)
    return None
