"""Consumers scaled against real consumer-group lag through the Deployments' scale subresource."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from devstack.kafka import Kafka
from tests.k8s.operator.conftest import OperatorProcess, Pipelines, pipeline_body, wait_for


def consumer_spec(name: str, topic: str, group: str, **overrides: Any) -> dict[str, Any]:
    spec = {
        "name": name,
        "deployment": f"retail-{name}",
        "topic": topic,
        "consumerGroup": group,
        "minReplicas": 1,
        "maxReplicas": 10,
        "lagThreshold": 10,
        "pollingIntervalSeconds": 1,
        "scaleDownStabilizationSeconds": 0,
    }
    return {**spec, **overrides}


def produce(kafka: Kafka, topic: str, count: int) -> None:
    producer = Producer(kafka.connection().config())
    for i in range(count):
        producer.produce(topic, key=f"app-{i}".encode(), value=b"{}", partition=i % 3)
    assert producer.flush(30) == 0


def commit_to_end(kafka: Kafka, admin: AdminClient, topic: str, group: str) -> None:
    consumer = Consumer({**kafka.connection().config(), "group.id": group})
    try:
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
        ends = [TopicPartition(topic, p, consumer.get_watermark_offsets(
            TopicPartition(topic, p), timeout=10)[1]) for p in partitions]  # fmt: skip
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()


def consumer_status(pipelines: Pipelines, name: str) -> dict[str, Any] | None:
    status = (pipelines.get("retail") or {}).get("status") or {}
    return next((c for c in status.get("consumers") or [] if c["name"] == name), None)


def test_lag_is_turned_into_replicas_capped_idle_and_zero(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    prefix = f"{pipelines.namespace}."
    for deployment in ("capped", "idle", "zero"):
        pipelines.create_deployment(f"retail-{deployment}", replicas=1)
    pipelines.create_db_secret("retail-db")
    consumers = [
        # 3 partitions, lag 1,000, threshold 10, max 10 → 3 (one per partition)
        consumer_spec("capped", "loan_applications_submitted", "credit"),
        # the same with allowIdleConsumers → 10
        consumer_spec("idle", "loan_applications_submitted", "credit", allowIdleConsumers=True),
        # no lag and min 0 → 0
        consumer_spec("zero", "credit_reports_generated", "decision", minReplicas=0),
    ]
    pipelines.create(pipeline_body("retail", kafka.bootstrap, prefix, consumers=consumers))
    pipelines.wait_condition("retail", "TopicsReady", "True")
    produce(kafka, prefix + "loan_applications_submitted", 1000)

    wait_for(lambda: pipelines.replicas("retail-capped") == 3, 30, "capped at 3 partitions")
    wait_for(lambda: pipelines.replicas("retail-idle") == 10, 30, "10 replicas with idle consumers")
    wait_for(lambda: pipelines.replicas("retail-zero") == 0, 30, "scale to zero")
    # The operator patches the Deployment before it writes its status: on a busy machine the
    # status read here may still be the one from before the records were produced.
    capped = wait_for(
        lambda: (c := consumer_status(pipelines, "capped")) and c["lag"] == 1000 and c,
        10,
        "consumer status with the lag of 1,000",
    )
    assert capped["desiredReplicas"] == 3
    assert capped["lastScaleTime"]
    assert pipelines.wait_condition("retail", "ScalingActive", "True")["reason"] == "LagObserved"
    status = (pipelines.get("retail") or {})["status"]
    assert status["totalLag"] == 2000  # two consumers of one group count the same lag
    assert any("capped: 1 → 3 replicas" in e.message for e in pipelines.events("Scaled"))


def test_drained_lag_scales_down_only_after_the_stabilization_window(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka, kafka_admin: AdminClient
) -> None:
    prefix = f"{pipelines.namespace}."
    window = 8
    pipelines.create_deployment("retail-credit", replicas=1)
    pipelines.create_db_secret("retail-db")
    consumers = [
        consumer_spec(
            "credit", "loan_applications_submitted", "credit", scaleDownStabilizationSeconds=window
        )
    ]
    pipelines.create(pipeline_body("retail", kafka.bootstrap, prefix, consumers=consumers))
    pipelines.wait_condition("retail", "TopicsReady", "True")
    produce(kafka, prefix + "loan_applications_submitted", 300)
    wait_for(lambda: pipelines.replicas("retail-credit") == 3, 30, "scale up to 3")

    commit_to_end(kafka, kafka_admin, prefix + "loan_applications_submitted", "credit")
    drained_at = time.monotonic()
    wait_for(
        lambda: (c := consumer_status(pipelines, "credit")) and c["lag"] == 0, 20, "lag 0 in status"
    )
    assert pipelines.replicas("retail-credit") == 3, "scaled down before the window passed"
    wait_for(lambda: pipelines.replicas("retail-credit") == 1, window + 20, "scale down to min 1")
    assert time.monotonic() - drained_at >= window - 1.5


def test_the_webhook_dispatcher_is_scaled_against_its_lag_on_the_decided_topic(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    prefix = f"{pipelines.namespace}."
    pipelines.create_deployment("retail-webhook-dispatcher", replicas=1)
    pipelines.create_db_secret("retail-db")
    # The CRD takes the decided topic for a consumer; 45 records, threshold 10 → 3 (partitions).
    dispatcher = consumer_spec(
        "webhook-dispatcher", "loan_applications_decided", "webhook-dispatcher", maxReplicas=3
    )
    pipelines.create(pipeline_body("retail", kafka.bootstrap, prefix, consumers=[dispatcher]))
    pipelines.wait_condition("retail", "TopicsReady", "True")
    produce(kafka, prefix + "loan_applications_decided", 45)

    wait_for(lambda: pipelines.replicas("retail-webhook-dispatcher") == 3, 30, "3 dispatchers")
    status = wait_for(
        lambda: (c := consumer_status(pipelines, "webhook-dispatcher")) and c["lag"] == 45 and c,
        10,
        "the dispatcher's lag of 45",
    )
    assert status["desiredReplicas"] == 3
