"""The CRD itself refuses invalid specs with its CEL messages; kubectl shows the columns."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiException

from devstack.kube import ControlPlane
from devstack.tools import tool
from loan_operator.decision_policy import DEFAULT_DECISION_POLICY
from tests.k8s.operator.conftest import REPO, Pipelines, kubectl, pipeline_body

CONSUMER = {
    "name": "c",
    "deployment": "retail-c",
    "topic": "loan_applications_submitted",
    "consumerGroup": "c",
}


def refused(pipelines: Pipelines, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as error:
        pipelines.create(body)
    assert error.value.status == 422
    return str(error.value.body)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"consumers": [{**CONSUMER, "minReplicas": 5, "maxReplicas": 2}]},
            "minReplicas must be less than or equal to maxReplicas",
        ),
        ({"consumers": [{**CONSUMER, "lagThreshold": 0}]}, "lagThreshold must be greater than 0"),
        (
            {"kafka": {"bootstrapServers": "k:9092", "partitions": 0}},
            "partitions must be at least 1",
        ),
        ({"consumers": [{**CONSUMER, "topic": "other"}]}, "Unsupported value"),
        (
            {
                "decisionPolicy": {
                    "scoreBands": [{"name": "PRIME", "minScore": 700, "annualRate": "0.12"}]
                }
            },
            "the lowest scoreBands minScore must not exceed minCreditScore",
        ),
        (
            {
                "decisionPolicy": {
                    "scoreBands": [
                        {"name": "A", "minScore": 300, "annualRate": "0.12"},
                        {"name": "B", "minScore": 300, "annualRate": "0.14"},
                    ]
                }
            },
            "scoreBands need distinct minScores",
        ),
        (
            {
                "decisionPolicy": {
                    "scoreBands": [{"name": "A", "minScore": 300, "annualRate": "12"}]
                }
            },
            "annualRate",
        ),
        (
            {"decisionPolicy": {"processingFee": {"minimum": "500.00", "maximum": "100.00"}}},
            "processingFee.minimum must not exceed processingFee.maximum",
        ),
        (
            {
                "challengerPolicy": {
                    "minCreditScore": 600,
                    "scoreBands": [{"name": "A", "minScore": 650, "annualRate": "0.12"}],
                }
            },
            "the lowest scoreBands minScore must not exceed minCreditScore",
        ),
    ],
)
def test_invalid_spec_is_rejected_with_the_rule_message(
    crd: None, pipelines: Pipelines, spec: dict[str, Any], message: str
) -> None:
    body = pipeline_body("retail", "k:9092", "p.")
    body["spec"].update(spec)
    assert message in refused(pipelines, body)


@pytest.mark.parametrize(
    "deployment", ["ingress-nginx-controller", "retail", "retailx-c", "other-retail-c"]
)
def test_kubectl_apply_refuses_a_consumer_target_outside_the_pipelines_release(
    control_plane: ControlPlane, crd: None, pipelines: Pipelines, deployment: str
) -> None:
    body = pipeline_body(
        "retail",
        "k:9092",
        "retail.",
        consumers=[CONSUMER, {**CONSUMER, "name": "x", "deployment": deployment}],
    )
    body["metadata"]["namespace"] = pipelines.namespace
    result = subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(control_plane.kubeconfig), "apply", "-f", "-"],
        input=yaml.safe_dump(body),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "every consumers[].deployment must be one of this pipeline's own" in result.stderr
    assert pipelines.get("retail") is None
    # The same pipeline naming only its own Deployments is accepted.
    body["spec"]["consumers"] = [CONSUMER]
    kubectl(control_plane, "apply", "-f", "-", stdin=yaml.safe_dump(body))
    assert pipelines.get("retail") is not None


def test_topic_prefix_is_immutable(crd: None, pipelines: Pipelines) -> None:
    pipelines.create(pipeline_body("retail", "k:9092", "retail."))
    with pytest.raises(ApiException) as error:
        pipelines.patch_spec("retail", {"kafka": {"topicPrefix": "other."}})
    assert error.value.status == 422
    assert "topicPrefix is immutable" in str(error.value.body)


def test_the_index_key_version_only_moves_forward(crd: None, pipelines: Pipelines) -> None:
    body = pipeline_body("retail", "k:9092", "retail.")
    body["spec"]["encryption"]["indexKeyVersion"] = 2
    pipelines.create(body)
    with pytest.raises(ApiException) as error:
        pipelines.patch_spec(
            "retail", {"encryption": {"keySecretName": "retail-pan-keys", "indexKeyVersion": 1}}
        )
    assert error.value.status == 422
    assert "indexKeyVersion can only be raised" in str(error.value.body)


def test_defaults_are_applied_by_the_api_server(crd: None, pipelines: Pipelines) -> None:
    body = pipeline_body("retail", "k:9092", "retail.", consumers=[CONSUMER])
    del body["spec"]["kafka"]["dlq"]
    stored = pipelines.create(body)["spec"]
    assert stored["deletionPolicy"] == "Retain"
    assert stored["kafka"]["dlq"] == {"partitions": 1}
    assert stored["encryption"]["keyVersion"] == 1
    assert stored["encryption"]["indexKeyVersion"] == 1
    # The API server fills in the whole policy document, exactly as the service defaults it.
    assert stored["decisionPolicy"] == DEFAULT_DECISION_POLICY
    assert "challengerPolicy" not in stored  # no challenger unless one is named
    consumer = stored["consumers"][0]
    assert (consumer["minReplicas"], consumer["maxReplicas"], consumer["lagThreshold"]) == (
        1,
        6,
        100,
    )
    assert consumer["offsetResetPolicy"] == "earliest"


def test_kubectl_get_lp_shows_the_printer_columns(
    control_plane: ControlPlane, crd: None, pipelines: Pipelines
) -> None:
    pipelines.create(pipeline_body("retail", "k:9092", "retail."))
    header = kubectl(control_plane, "get", "lp", "-n", pipelines.namespace).splitlines()[0].split()
    assert header == ["NAME", "READY", "TOPICS", "LAG", "REPLICAS", "AGE"]


def test_the_sample_pipeline_is_valid_against_the_crd(crd: None, pipelines: Pipelines) -> None:
    sample = yaml.safe_load((REPO / "manifests" / "samples" / "retail.yaml").read_text())
    sample["metadata"]["namespace"] = pipelines.namespace
    stored = pipelines.custom.create_namespaced_custom_object(
        "prequal.dev", "v1alpha1", pipelines.namespace, "loanpipelines", sample, dry_run="All"
    )
    assert stored["spec"]["kafka"]["topicPrefix"] == "retail."
    assert [c["name"] for c in stored["spec"]["consumers"]] == [
        "credit-service",
        "decision-service",
        "webhook-dispatcher",
    ]
