"""Deletion never hangs — with Kafka unreachable, or with the operator gone — and topics follow
deletionPolicy. An unreachable Kafka is a condition and a backoff, not a crash loop."""

from __future__ import annotations

import time
import urllib.request

from confluent_kafka.admin import AdminClient

from devstack.kafka import Kafka
from devstack.net import free_port
from loan_operator.kafka_principals import LEGACY_FINALIZER
from tests.k8s.operator.conftest import OperatorProcess, Pipelines, pipeline_body, wait_for


def topic_exists(admin: AdminClient, name: str) -> bool:
    return name in admin.list_topics(timeout=10).topics


def test_delete_policy_deletes_the_topics_and_retain_keeps_them(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka, kafka_admin: AdminClient
) -> None:
    ns = pipelines.namespace
    pipelines.create_db_secret("a-db")
    pipelines.create_db_secret("b-db")
    pipelines.create(pipeline_body("a", kafka.bootstrap, f"{ns}.a.", deletionPolicy="Delete"))
    pipelines.create(pipeline_body("b", kafka.bootstrap, f"{ns}.b."))
    pipelines.wait_condition("a", "TopicsReady", "True")
    pipelines.wait_condition("b", "TopicsReady", "True")
    assert not (pipelines.get("a") or {})["metadata"].get("finalizers")

    pipelines.delete("a")
    pipelines.delete("b")
    wait_for(lambda: pipelines.get("a") is None and pipelines.get("b") is None, 5, "both gone")
    wait_for(
        lambda: not topic_exists(kafka_admin, f"{ns}.a.loan_applications_submitted_dlq"),
        30,
        "Delete-policy topics to be deleted",
    )
    assert not topic_exists(kafka_admin, f"{ns}.a.credit_reports_generated")
    assert topic_exists(kafka_admin, f"{ns}.b.credit_reports_generated")
    assert topic_exists(kafka_admin, f"{ns}.b.loan_applications_submitted_dlq")
    assert pipelines.events("TopicsDeleted")


def test_unreachable_kafka_is_a_condition_with_backoff_and_deletion_does_not_hang(
    operator: OperatorProcess, pipelines: Pipelines
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens here
    pipelines.create_db_secret("retail-db")
    pipelines.create_deployment("retail-credit")
    consumers = [
        {
            "name": "credit",
            "deployment": "retail-credit",
            "topic": "loan_applications_submitted",
            "consumerGroup": "credit",
            "pollingIntervalSeconds": 1,
        }
    ]
    body = pipeline_body("retail", nowhere, "x.", deletionPolicy="Delete", consumers=consumers)
    log_before = len(operator.log())
    pipelines.create(body)

    topics = pipelines.wait_condition("retail", "TopicsReady", "False", "KafkaUnreachable")
    assert nowhere in topics["message"]
    pipelines.wait_condition("retail", "ScalingActive", "False", "KafkaUnreachable")
    assert pipelines.wait_condition("retail", "Ready", "False")["reason"] == "KafkaUnreachable"
    assert pipelines.replicas("retail-credit") == 1  # nothing is scaled on guesswork
    events = len(pipelines.events("KafkaUnreachable"))
    # One per condition that turned False: TopicsReady, ScalingActive, KafkaAccessReady.
    assert events <= 3
    time.sleep(6)
    log = operator.log()[log_before:]
    assert "Traceback" not in log
    # Warnings and Events per transition, not per retry.
    assert log.count("KafkaUnreachable") <= 3, log
    assert len(pipelines.events("KafkaUnreachable")) == events
    assert pipelines.condition("retail", "TopicsReady") == topics | {
        "message": pipelines.condition("retail", "TopicsReady")["message"]  # type: ignore[index]
    }  # lastTransitionTime did not move while it stayed False
    # The errors counter counts the failed steps, though Events and warnings do not repeat.
    failed = f'loan_operator_errors_total{{namespace="{pipelines.namespace}",pipeline="retail",'
    assert f'{failed}reason="KafkaUnreachable"}}' in operator.metrics()

    started = time.monotonic()
    pipelines.delete("retail")
    wait_for(lambda: pipelines.get("retail") is None, 5, "the LoanPipeline to be gone")
    assert time.monotonic() - started < 5
    failed = wait_for(lambda: pipelines.events("TopicDeletionFailed"), 60, "a give-up Event")
    assert failed[0].type == "Warning"


def test_deletion_does_not_hang_while_the_operator_is_gone(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    pipelines.create_db_secret("retail-db")
    pipelines.create(
        pipeline_body("retail", kafka.bootstrap, f"{pipelines.namespace}.", deletionPolicy="Delete")
    )
    pipelines.wait_condition("retail", "Ready", "True")
    operator.stop()
    try:
        pipelines.delete("retail")
        wait_for(lambda: pipelines.get("retail") is None, 5, "deletion without the operator")
    finally:
        operator.start()


def test_metrics_and_liveness_endpoints(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    pipelines.create_db_secret("retail-db")
    pipelines.create_deployment("retail-credit")
    consumers = [
        {
            "name": "credit",
            "deployment": "retail-credit",
            "topic": "loan_applications_submitted",
            "consumerGroup": "credit",
            "pollingIntervalSeconds": 1,
        }
    ]
    pipelines.create(
        pipeline_body("retail", kafka.bootstrap, f"{pipelines.namespace}.", consumers=consumers)
    )
    pipelines.wait_condition("retail", "ScalingActive", "True")
    labels = f'namespace="{pipelines.namespace}",pipeline="retail"'
    text = wait_for(
        lambda: (
            (t := operator.metrics())
            and f'loan_operator_desired_replicas{{consumer="credit",{labels}}} 1.0' in t
            and t
        ),
        10,
        "the consumer's gauges",
    )
    assert f'loan_operator_consumer_lag{{consumer="credit",{labels}}} 0.0' in text
    # A pass is "ok" once the Kafka users and ACLs are listed too (KafkaAccessReady), which can
    # take a pass or two after the scaling gauges appear.
    wait_for(
        lambda: f'loan_operator_reconciles_total{{{labels},result="ok"}}' in operator.metrics(),
        30,
        "a reconcile pass with everything in place",
    )
    # Exported; that it counts failed steps is shown with Kafka unreachable, above.
    assert "# TYPE loan_operator_errors_total counter" in text
    with urllib.request.urlopen(operator.liveness_url, timeout=5) as resp:  # noqa: S310
        assert resp.status == 200


def test_the_finalizer_of_an_earlier_version_is_stripped_so_deletion_does_not_hang(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    pipelines.create_db_secret("retail-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, f"{pipelines.namespace}."))
    pipelines.wait_condition("retail", "TopicsReady", "True")
    # What a pipeline made by the version that held deletion for the Kafka cleanup carries.
    pipelines.patch_metadata("retail", {"finalizers": [LEGACY_FINALIZER]})
    wait_for(
        lambda: not (pipelines.get("retail") or {})["metadata"].get("finalizers"),
        30,
        "the operator to strip the old finalizer",
    )
    pipelines.delete("retail")
    wait_for(lambda: pipelines.get("retail") is None, 5, "the LoanPipeline to be gone")
