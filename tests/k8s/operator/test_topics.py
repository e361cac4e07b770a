"""Topics and DLQs: created, adopted, raised, drift-corrected; a decrease is refused."""

from __future__ import annotations

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from devstack.kafka import Kafka
from tests.k8s.operator.conftest import OperatorProcess, Pipelines, pipeline_body, wait_for

TOPICS = (
    "loan_applications_submitted",
    "loan_applications_submitted_dlq",
    "credit_reports_generated",
    "credit_reports_generated_dlq",
    "loan_applications_decided",
    "loan_applications_decided_dlq",
)


def partitions(admin: AdminClient, topic: str) -> int:
    """The topic's partition count, once the broker's metadata has it (creation is async)."""

    def count() -> int:
        metadata = admin.list_topics(topic, timeout=10).topics[topic]
        return 0 if metadata.error else len(metadata.partitions)

    return wait_for(count, 10, f"metadata of {topic}")


def topic_config(admin: AdminClient, topic: str, key: str) -> str:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return str(admin.describe_configs([resource])[resource].result(10)[key].value)


def test_topics_and_dlqs_are_created_with_spec_partitions_and_config(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka, kafka_admin: AdminClient
) -> None:
    prefix = f"{pipelines.namespace}."
    pipelines.create_db_secret("retail-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, prefix))

    ready = pipelines.wait_condition("retail", "TopicsReady", "True")
    assert ready["reason"] == "TopicsReconciled"
    assert {prefix + t: partitions(kafka_admin, prefix + t) for t in TOPICS} == {
        prefix + "loan_applications_submitted": 3,
        prefix + "loan_applications_submitted_dlq": 1,
        prefix + "credit_reports_generated": 3,
        prefix + "credit_reports_generated_dlq": 1,
        prefix + "loan_applications_decided": 3,
        prefix + "loan_applications_decided_dlq": 1,
    }
    assert topic_config(kafka_admin, prefix + "credit_reports_generated", "retention.ms") == (
        "604800000"
    )
    assert topic_config(kafka_admin, prefix + "credit_reports_generated_dlq", "retention.ms") == (
        "1209600000"
    )
    status = (pipelines.get("retail") or {})["status"]
    assert status["observedGeneration"] == 1
    assert status["topicsSummary"] == "6/6"
    assert {t["name"]: t["partitions"] for t in status["topics"]}[
        prefix + "loan_applications_submitted"
    ] == 3
    assert {e.reason for e in pipelines.events()} >= {"TopicCreated", "KeySecretCreated"}
    pipelines.wait_condition("retail", "Ready", "True")


def test_existing_topic_is_adopted_and_raised_and_its_drifted_config_corrected(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka, kafka_admin: AdminClient
) -> None:
    prefix = f"{pipelines.namespace}."
    existing = prefix + "loan_applications_submitted"
    kafka_admin.create_topics(
        [
            NewTopic(
                existing, num_partitions=1, replication_factor=1, config={"retention.ms": "1000"}
            )
        ]
    )[existing].result(30)
    pipelines.create_db_secret("retail-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, prefix))

    pipelines.wait_condition("retail", "TopicsReady", "True")
    assert partitions(kafka_admin, existing) == 3
    assert topic_config(kafka_admin, existing, "retention.ms") == "604800000"
    reasons = [e.reason for e in pipelines.events()]
    assert "PartitionsIncreased" in reasons
    assert "TopicConfigUpdated" in reasons

    # Drift introduced behind the operator's back is corrected on the next resync.
    entry = ConfigEntry("retention.ms", "5000", incremental_operation=AlterConfigOpType.SET)
    drifted = ConfigResource(
        ResourceType.TOPIC, prefix + "credit_reports_generated_dlq", incremental_configs=[entry]
    )
    kafka_admin.incremental_alter_configs([drifted])[drifted].result(10)
    # The broker applies config through its metadata log, so the proof is the operator's
    # Event naming the drift it saw, then the value being back.
    wait_for(
        lambda: [
            e
            for e in pipelines.events("TopicConfigUpdated")
            if f"{drifted.name}: retention.ms: 5000 → 1209600000" in e.message
        ],
        20,
        "an Event for the corrected drift",
    )
    assert topic_config(kafka_admin, drifted.name, "retention.ms") == "1209600000"


def test_partition_decrease_is_refused_with_not_supported_and_never_applied(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka, kafka_admin: AdminClient
) -> None:
    prefix = f"{pipelines.namespace}."
    pipelines.create_db_secret("retail-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, prefix))
    pipelines.wait_condition("retail", "TopicsReady", "True")

    spec = pipeline_body("retail", kafka.bootstrap, prefix)["spec"]
    spec["kafka"]["partitions"] = 2
    pipelines.patch_spec("retail", spec)

    refused = pipelines.wait_condition("retail", "TopicsReady", "False", "NotSupported")
    assert "lowering them to 2 is not supported" in refused["message"]
    assert refused["observedGeneration"] == 2
    assert pipelines.wait_condition("retail", "Ready", "False")["reason"] == "NotSupported"
    assert partitions(kafka_admin, prefix + "loan_applications_submitted") == 3
    assert any(e.type == "Warning" for e in pipelines.events("NotSupported"))
