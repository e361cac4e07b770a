"""Deletion never hangs silently: with Kafka unreachable it waits, says why, and lets go when
the pipeline is annotated prequal.dev/skip-kafka-cleanup=true; with the operator gone it waits
for the operator. Topics follow deletionPolicy. An unreachable Kafka is a condition and a
backoff, not a crash loop."""

from __future__ import annotations

import time
import urllib.request

from confluent_kafka.admin import AdminClient

from devstack.kafka import Kafka
from devstack.net import free_port
from loan_operator.deletion import SKIP_ANNOTATION
from loan_operator.kafka_principals import FINALIZER
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
    # The one finalizer: the Kafka users' cleanup (the fixture's operator connects over SASL).
    assert (pipelines.get("a") or {})["metadata"].get("finalizers") == [FINALIZER]

    pipelines.delete("a")
    pipelines.delete("b")
    wait_for(lambda: pipelines.get("a") is None and pipelines.get("b") is None, 30, "both gone")
    wait_for(
        lambda: not topic_exists(kafka_admin, f"{ns}.a.loan_applications_submitted_dlq"),
        30,
        "Delete-policy topics to be deleted",
    )
    assert not topic_exists(kafka_admin, f"{ns}.a.credit_reports_generated")
    assert topic_exists(kafka_admin, f"{ns}.b.credit_reports_generated")
    assert topic_exists(kafka_admin, f"{ns}.b.loan_applications_submitted_dlq")
    assert pipelines.events("TopicsDeleted")


def test_unreachable_kafka_is_a_condition_with_backoff_and_deletion_waits_until_told_to_skip(
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
    # Users are made only once the deletion finalizer is on: a pass or so later.
    pipelines.wait_condition("retail", "KafkaAccessReady", "False", "KafkaUnreachable")
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

    # Its Kafka users may exist there: the deletion waits for their cleanup and says why.
    pipelines.delete("retail")
    [blocked] = wait_for(
        lambda: pipelines.events("KafkaCleanupBlocked"), 30, "a Warning Event saying why"
    )
    assert blocked.type == "Warning"
    assert nowhere in blocked.message
    assert "prequal.dev/skip-kafka-cleanup=true" in blocked.message
    time.sleep(5)
    assert pipelines.get("retail") is not None
    assert len(pipelines.events("KafkaCleanupBlocked")) == 1  # per reason, not per retry

    # The way out: the annotation lets it go, leaving the users (named in a Warning Event).
    pipelines.annotate("retail", {SKIP_ANNOTATION: "true"})
    wait_for(lambda: pipelines.get("retail") is None, 30, "the LoanPipeline to be gone")
    [skipped] = pipelines.events("KafkaCleanupSkipped")
    assert skipped.type == "Warning"
    assert f"{pipelines.namespace}.retail.publisher" in skipped.message
    failed = wait_for(lambda: pipelines.events("TopicDeletionFailed"), 60, "a give-up Event")
    assert failed[0].type == "Warning"


def test_deletion_while_the_operator_is_gone_waits_for_it_and_completes_when_it_is_back(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka, kafka_admin: AdminClient
) -> None:
    ns = pipelines.namespace
    pipelines.create_db_secret("retail-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, f"{ns}.", deletionPolicy="Delete"))
    pipelines.wait_condition("retail", "Ready", "True")
    operator.stop()
    try:
        pipelines.delete("retail")
        time.sleep(3)
        # Nobody can remove its Kafka users: it waits (kubectl shows it Terminating).
        waiting = pipelines.get("retail")
        assert waiting is not None
        assert waiting["metadata"]["finalizers"] == [FINALIZER]
    finally:
        operator.start()
    wait_for(lambda: pipelines.get("retail") is None, 60, "the deletion to complete")
    wait_for(
        lambda: not topic_exists(kafka_admin, f"{ns}.loan_applications_submitted"),
        30,
        "Delete-policy topics to be deleted",
    )


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
