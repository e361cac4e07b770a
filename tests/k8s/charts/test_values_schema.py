"""values.schema.json refuses what would render a broken release, with helm's own message,
before anything reaches a cluster."""

from __future__ import annotations

import json

import pytest

from .conftest import CHART_NAMES, CHARTS, helm

REFUSED = [
    ("loan-operator", ["--set", "replicas=2"], "additional properties 'replicas' not allowed"),
    ("loan-operator", ["--set", "logLevel=TRACE"], "/logLevel"),
    ("loan-operator", ["--set", "metricsPort=70000"], "/metricsPort"),
    ("loan-operator", ["--set", "image.digest=latest"], "/image/digest"),
    ("loan-operator", ["--set", "watchNamespaces={Not_A_Namespace}"], "/watchNamespaces/0"),
    ("loan-prequal", ["--set", "api.replicass=3"], "additional properties 'replicass' not allowed"),
    ("loan-prequal", ["--set", "pipeline.kafka.partitions=0"], "/pipeline/kafka/partitions"),
    ("loan-prequal", ["--set", "pipeline.deletionPolicy=Purge"], "/pipeline/deletionPolicy"),
    (
        "loan-prequal",
        ["--set", "pipeline.kafka.bootstrapServers=kafka"],
        "/pipeline/kafka/bootstrapServers",
    ),
    (
        "loan-prequal",
        ["--set", "pipeline.decisionPolicy.minCreditScore=1000"],
        "/pipeline/decisionPolicy/minCreditScore",
    ),
    (
        "loan-prequal",
        ["--set", "consumers.credit.autoscaling.lagThreshold=0"],
        "/consumers/credit/autoscaling/lagThreshold",
    ),
    (
        "loan-prequal",
        ["--set", "consumers.audit.enabled=true"],
        "additional properties 'audit' not allowed",
    ),
    ("loan-prequal", ["--set", "database.secretName=Bad_Name"], "/database/secretName"),
    (
        "loan-prequal",
        ["--set", "api.ingress.hosts[0].paths[0].path=/metrics"],
        "additional properties 'paths' not allowed",
    ),
    ("loan-prequal", ["--set", "api.ingress.enabled=true"], "/api/ingress/tls"),
    ("loan-prequal", ["--set", "api.limits.maxBodyBytes=10"], "/api/limits/maxBodyBytes"),
    ("loan-prequal", ["--set", "networkPolicy.kafka.ports={}"], "/networkPolicy/kafka/ports"),
]


@pytest.mark.parametrize(
    ("chart", "args", "message"), REFUSED, ids=[f"{c}:{' '.join(a[1:])}" for c, a, _ in REFUSED]
)
def test_schema_refuses_a_broken_value(chart: str, args: list[str], message: str) -> None:
    refused = helm("template", "rel", str(CHARTS / chart), *args)
    assert refused.returncode != 0, f"accepted: {args}"
    assert "values don't meet the specifications of the schema" in refused.stderr
    assert message in refused.stderr


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_schema_closes_every_object_it_describes(chart: str) -> None:
    """additionalProperties: false wherever the schema lists properties, so a misspelt value
    is an error and never silently ignored. Conditional subschemas (if/then) only add rules to
    an object closed where it is described, so they are not walked."""
    schema = json.loads((CHARTS / chart / "values.schema.json").read_text())
    open_objects: list[str] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(where or "/")
            for key, value in node.items():
                if key not in ("if", "then", "else"):
                    walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(schema, "")
    assert open_objects == []


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_every_value_is_commented(chart: str) -> None:
    """Each top-level key of values.yaml has a comment right above it (prometheus-community
    style), so `helm show values` documents the chart."""
    lines = (CHARTS / chart / "values.yaml").read_text().splitlines()
    uncommented = [
        line
        for number, line in enumerate(lines)
        if line and line[0].isalpha() and not lines[number - 1].startswith("#")
    ]
    assert uncommented == []
