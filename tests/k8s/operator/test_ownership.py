"""The operator touches only what it made for a pipeline: a LoanPipeline naming another
pipeline's key Secret, a Secret the operator never created, or a Deployment another pipeline
scales gets a condition, and the object stays exactly as it was."""

from __future__ import annotations

import base64
from typing import Any

from kubernetes import client

from devstack.kafka import Kafka
from tests.k8s.operator.conftest import OperatorProcess, Pipelines, pipeline_body, wait_for


def _metadata(pipelines: Pipelines, name: str) -> client.V1ObjectMeta:
    return pipelines.core.read_namespaced_secret(name, pipelines.namespace).metadata


def test_key_secrets_are_labelled_annotated_and_never_owned(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    pipelines.create_db_secret("retail-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, f"{pipelines.namespace}."))
    pipelines.wait_condition("retail", "SecretsReady", "True")
    for name in ("retail-pan-keys", "retail-pan-keys-api"):
        meta = _metadata(pipelines, name)
        assert meta.labels["app.kubernetes.io/managed-by"] == "loan-operator", name
        assert meta.annotations["prequal.dev/pipeline"] == "retail", name
        # No ownerReference: the garbage collector never follows a pipeline to its keys.
        assert not meta.owner_references, name
    config = pipelines.core.read_namespaced_config_map("retail-pipeline", pipelines.namespace)
    assert config.metadata.labels["app.kubernetes.io/managed-by"] == "loan-operator"
    [owner] = config.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller) == ("LoanPipeline", "retail", True)


def test_a_pipeline_naming_another_pipelines_key_secret_is_refused_and_changes_nothing(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    ns = pipelines.namespace
    pipelines.create_db_secret("retail-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, f"{ns}.retail."))
    pipelines.wait_condition("retail", "SecretsReady", "True")
    before = {n: pipelines.secret(n) for n in ("retail-pan-keys", "retail-pan-keys-api")}
    versions = {n: _metadata(pipelines, n).resource_version for n in before}

    # A second pipeline points at the first one's keys and asks for a rotation to v2; it would
    # also have them garbage-collected with it, were key Secrets owned.
    pipelines.create_db_secret("intruder-db")
    intruder = pipeline_body("intruder", kafka.bootstrap, f"{ns}.intruder.")
    intruder["spec"]["encryption"] = {"keySecretName": "retail-pan-keys", "keyVersion": 2}
    intruder["spec"]["deletionPolicy"] = "Delete"
    pipelines.create(intruder)
    refused = pipelines.wait_condition(
        "intruder", "SecretsReady", "False", "OwnedByAnotherPipeline"
    )
    assert "belongs to LoanPipeline retail" in refused["message"]
    assert pipelines.wait_condition("intruder", "Ready", "False")["reason"] == (
        "OwnedByAnotherPipeline"
    )
    assert [e for e in pipelines.events("OwnedByAnotherPipeline") if e.type == "Warning"]
    # Refused passes keep coming (resync 3 s, backoff up to 8 s): look after a third one.
    sample = (
        f'loan_operator_errors_total{{namespace="{ns}",pipeline="intruder",'
        'reason="OwnedByAnotherPipeline"}'
    )
    wait_for(
        lambda: any(
            line.startswith(sample) and float(line.split()[-1]) >= 3
            for line in operator.metrics().splitlines()
        ),
        40,
        "three refused passes",
    )
    pipelines.wait_condition("retail", "Ready", "True")
    for name, data in before.items():
        assert pipelines.secret(name) == data, name
        assert _metadata(pipelines, name).resource_version == versions[name], name
        assert _metadata(pipelines, name).annotations["prequal.dev/pipeline"] == "retail"

    pipelines.delete("intruder")
    wait_for(lambda: pipelines.config_map("intruder-pipeline") is None, 60, "the intruder's GC")
    for name, data in before.items():
        assert pipelines.secret(name) == data, name
    assert "v2:" not in (pipelines.secret("retail-pan-keys") or {})["sealing_private_keys"]


def test_a_secret_the_operator_did_not_create_is_never_written(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    # Someone else's Secret that happens to be called like a projection (`<keySecretName>-api`).
    theirs = {"note": base64.b64encode(b"someone else's data").decode()}
    pipelines.core.create_namespaced_secret(
        pipelines.namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="billing-api"), data=theirs),
    )
    pipelines.create_db_secret("retail-db")
    body = pipeline_body("retail", kafka.bootstrap, f"{pipelines.namespace}.")
    body["spec"]["encryption"] = {"keySecretName": "billing"}
    pipelines.create(body)
    refused = pipelines.wait_condition("retail", "SecretsReady", "False", "NotManagedByOperator")
    assert "billing-api" in refused["message"]
    assert pipelines.secret("billing-api") == {"note": "someone else's data"}
    meta = _metadata(pipelines, "billing-api")
    assert (meta.annotations, meta.labels, meta.owner_references) == (None, None, None)


def _scaled(name: str, deployment: str, replicas: int) -> dict[str, Any]:
    return {
        "name": name,
        "deployment": deployment,
        "topic": "loan_applications_submitted",
        "consumerGroup": name,
        "minReplicas": replicas,
        "maxReplicas": replicas,
        "pollingIntervalSeconds": 1,
        "scaleDownStabilizationSeconds": 0,
    }


def test_a_deployment_named_by_two_pipelines_is_scaled_by_the_first_only(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    ns = pipelines.namespace
    pipelines.create_deployment("a-b-credit", replicas=1)
    pipelines.create_db_secret("a-db")
    pipelines.create_db_secret("a-b-db")
    # "a" may name a-b-credit (the CRD's prefix rule lets it); it names it first. (Created in
    # the same second, the tie goes to the lower name: "a" either way.)
    first = pipeline_body(
        "a", kafka.bootstrap, f"{ns}.a.", consumers=[_scaled("c", "a-b-credit", 2)]
    )
    pipelines.create(first)
    pipelines.wait_condition("a", "ScalingActive", "True", "LagObserved")
    wait_for(lambda: pipelines.replicas("a-b-credit") == 2, 30, "the first pipeline to scale")

    second = pipeline_body(
        "a-b", kafka.bootstrap, f"{ns}.ab.", consumers=[_scaled("c", "a-b-credit", 5)]
    )
    pipelines.create(second)
    refused = pipelines.wait_condition("a-b", "ScalingActive", "False", "OwnedByAnotherPipeline")
    assert "scaled by LoanPipeline a" in refused["message"]
    # The second pipeline polls every second; the first one's replicas stand.
    pipelines.wait_condition("a-b", "TopicsReady", "True")
    assert pipelines.replicas("a-b-credit") == 2
    assert not [e for e in pipelines.events("Scaled") if e.involved_object.name == "a-b"]

    # Once the first pipeline lets go, the Deployment is the second one's.
    pipelines.delete("a")
    wait_for(lambda: pipelines.replicas("a-b-credit") == 5, 30, "the second pipeline to scale")
    pipelines.wait_condition("a-b", "ScalingActive", "True", "LagObserved")
