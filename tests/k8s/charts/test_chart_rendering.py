"""The charts render, pass `helm lint --strict` and validate strictly, offline, for every CI
scenario; and what they render keeps the platform's contracts (DESIGN.md "Kubernetes",
docs/configuration.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from loan_operator.keyring import API_KEYS, WEBHOOK_API_KEYS

from .conftest import (
    ANY_ADDRESS,
    CHART_NAMES,
    CHARTS,
    LOANPIPELINE_CRD,
    POD_TMP,
    by_kind,
    ci_values,
    documents,
    env_of,
    helm,
    pod_specs,
    policies_of,
    render,
)

SCENARIOS = [(chart, values) for chart in CHART_NAMES for values in ci_values(chart)]
SCENARIO_IDS = [f"{chart}:{values.name}" for chart, values in SCENARIOS]
Validate = Callable[[str], list[dict[str, Any]]]


def test_every_chart_has_ci_scenarios() -> None:
    for chart in CHART_NAMES:
        assert len(ci_values(chart)) >= 3, chart


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=SCENARIO_IDS)
def test_lint_strict_passes(chart: str, values: Path) -> None:
    linted = helm("lint", "--strict", str(CHARTS / chart), "-f", str(values))
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 chart(s) failed" in linted.stdout


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=SCENARIO_IDS)
def test_rendering_is_valid_against_kubernetes_and_crd_schemas(
    chart: str, values: Path, kubeconform: Validate
) -> None:
    text = render(chart, "-f", str(values))
    if not LOANPIPELINE_CRD.exists():
        # Validated by test_loanpipeline_is_valid_against_the_crd once the CRD exists.
        text = yaml.safe_dump_all(d for d in documents(text) if d["kind"] != "LoanPipeline")
    results = kubeconform(text)
    assert results, "kubeconform saw no resources"
    invalid = [
        (r["kind"], r["name"], r.get("msg")) for r in results if r["status"] != "statusValid"
    ]
    assert invalid == []


def test_kubeconform_refuses_unknown_fields_in_our_and_crd_kinds(kubeconform: Validate) -> None:
    """The validation above can fail: a typo in a core kind or a CRD kind is caught."""
    docs = documents(render("loan-prequal", "--set", "serviceMonitor.enabled=true"))
    deployment = by_kind(docs, "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    monitor = by_kind(docs, "ServiceMonitor")[0]
    monitor["spec"]["endpoints"][0]["intervall"] = "5s"
    results = {r["kind"]: r for r in kubeconform(yaml.safe_dump_all([deployment, monitor]))}
    assert {kind: r["status"] for kind, r in results.items()} == {
        "Deployment": "statusInvalid",
        "ServiceMonitor": "statusInvalid",
    }
    assert "imagePullPolicyy" in results["Deployment"]["msg"]
    assert "intervall" in results["ServiceMonitor"]["msg"]


def test_loanpipeline_is_valid_against_the_crd(
    loanpipeline_crd: Path, kubeconform: Validate
) -> None:
    for values in ci_values("loan-prequal"):
        pipelines = by_kind(documents(render("loan-prequal", "-f", str(values))), "LoanPipeline")
        assert len(pipelines) == 1
        [result] = kubeconform(yaml.safe_dump(pipelines[0]))
        assert result["status"] == "statusValid", (values.name, result.get("msg"))


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=SCENARIO_IDS)
def test_every_pod_is_non_root_read_only_and_unprivileged(chart: str, values: Path) -> None:
    specs = pod_specs(documents(render(chart, "-f", str(values))))
    assert specs
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] != 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in security["capabilities"], name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"]["memory"], name


def test_long_running_containers_have_probes_on_their_health_endpoints() -> None:
    expected = {
        "rel-loan-prequal-api": ("/health", "/ready"),
        "rel-loan-operator": ("/healthz", "/health"),
    }
    for chart in CHART_NAMES:
        for deployment in by_kind(documents(render(chart)), "Deployment"):
            name = deployment["metadata"]["name"]
            [container] = deployment["spec"]["template"]["spec"]["containers"]
            liveness = container["livenessProbe"]["httpGet"]["path"]
            readiness = container["readinessProbe"]["httpGet"]["path"]
            # The workers' only Service is their metrics: ready once /metrics answers.
            assert (liveness, readiness) == expected.get(name, ("/health", "/metrics")), name


def _deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}


def test_consumers_leave_replicas_to_the_operator_when_it_scales_them() -> None:
    docs = documents(render("loan-prequal"))
    deployments = _deployments(docs)
    [pipeline] = by_kind(docs, "LoanPipeline")
    scaled = {c["deployment"]: c for c in pipeline["spec"]["consumers"]}
    assert set(scaled) == {
        "rel-loan-prequal-credit",
        "rel-loan-prequal-decision",
        "rel-loan-prequal-webhooks",
    }
    for name, consumer in scaled.items():
        assert "replicas" not in deployments[name]["spec"], name
        assert consumer["minReplicas"] <= consumer["maxReplicas"]
    assert scaled["rel-loan-prequal-credit"]["topic"] == "loan_applications_submitted"
    assert scaled["rel-loan-prequal-decision"]["topic"] == "credit_reports_generated"
    # The webhook dispatcher is scaled against its lag on the decided topic like the others.
    assert scaled["rel-loan-prequal-webhooks"]["topic"] == "loan_applications_decided"
    assert scaled["rel-loan-prequal-webhooks"]["consumerGroup"] == "webhook-dispatcher"
    assert scaled["rel-loan-prequal-webhooks"]["name"] == "webhook-dispatcher"
    assert deployments["rel-loan-prequal-api"]["spec"]["replicas"] == 2

    fixed = documents(
        render("loan-prequal", "-f", str(CHARTS / "loan-prequal/ci/fixed-replicas-values.yaml"))
    )
    assert _deployments(fixed)["rel-loan-prequal-credit"]["spec"]["replicas"] == 2
    assert "rel-loan-prequal-decision" not in _deployments(fixed)
    assert by_kind(fixed, "LoanPipeline")[0]["spec"]["consumers"] == []


def test_processes_get_the_configuration_contract() -> None:
    """docs/configuration.md: commands, ports, DATABASE_URL from the Secret's `url`, the
    operator's `<pipeline>-pipeline` ConfigMap, the PAN key Secret as SECRETS_DIR."""
    docs = documents(render("loan-prequal", "--set", "database.secretName=retail-db"))
    deployments = _deployments(docs)
    expected = {
        "api": ("prequal-api", None, True),
        "publisher": ("outbox-publisher", "9101", False),
        "credit": ("credit-service", "9102", True),
        "decision": ("decision-service", "9103", False),
        "webhooks": ("webhook-dispatcher", "9105", True),
    }
    for component, (command, metrics_port, has_keys) in expected.items():
        spec = deployments[f"rel-loan-prequal-{component}"]["spec"]["template"]["spec"]
        [container] = spec["containers"]
        env = env_of(container)
        assert container["args"] == [command]
        assert "command" not in container  # the image entrypoint (dev: reloader) runs it
        assert env["DATABASE_URL"] == {"secretKeyRef": {"name": "retail-db", "key": "url"}}
        assert env.get("METRICS_PORT") == metrics_port
        if metrics_port:
            assert env["METRICS_HOST"] == ANY_ADDRESS, component
        assert container["envFrom"] == [{"configMapRef": {"name": "rel-loan-prequal-pipeline"}}]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert ("/var/run/secrets/prequal" in mounts) is has_keys, component
        assert mounts[POD_TMP] == "tmp"
        if component == "api":
            # The projection without private keys and the index keys, which no one else mounts.
            volume = next(v for v in spec["volumes"] if v["name"] == "api-keys")
            sources = [source["secret"]["name"] for source in volume["projected"]["sources"]]
            assert sources == ["rel-loan-prequal-pan-keys-api", "rel-loan-prequal-pan-keys-index"]
            # Every key the operator writes into the -api Secret reaches the API (the webhook
            # keys were once left out of the named items: the API then refused to start).
            [api_items] = [
                source["secret"]["items"]
                for source in volume["projected"]["sources"]
                if source["secret"]["name"].endswith("-api")
            ]
            assert {item["key"] for item in api_items} == {*API_KEYS, *WEBHOOK_API_KEYS}
        elif has_keys:
            # credit-service mounts the key Secret; the dispatcher its own key Secret (it opens
            # signing secrets, never a data key).
            name, suffix = {
                "credit": ("pan-keys", ""),
                "webhooks": ("webhook-keys", "-webhooks"),
            }[component]
            assert [v["name"] for v in spec["volumes"] if v.get("secret")] == [name]
            volume = next(v for v in spec["volumes"] if v["name"] == name)
            assert volume["secret"]["secretName"] == f"rel-loan-prequal-pan-keys{suffix}"
    for component in ("credit", "decision"):
        container = deployments[f"rel-loan-prequal-{component}"]["spec"]["template"]["spec"][
            "containers"
        ][0]
        assert env_of(container)["CONSUMER_GROUP"] == f"{component}-service"
    container = deployments["rel-loan-prequal-webhooks"]["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert env_of(container)["CONSUMER_GROUP"] == "webhook-dispatcher"
    # The SSRF guard's allow-list is empty unless set; the API and the dispatcher read it.
    assert env_of(container)["WEBHOOK_ALLOWED_NETWORKS"] == ""
    api = deployments["rel-loan-prequal-api"]["spec"]["template"]["spec"]["containers"][0]
    api_env = env_of(api)
    assert (api_env["API_HOST"], api_env["API_PORT"]) == (ANY_ADDRESS, "8000")
    assert api_env["OIDC_TOKEN_URL"] == ""  # derived from the issuer (Hydra's /oauth2/token)
    [pipeline] = by_kind(docs, "LoanPipeline")
    assert pipeline["metadata"]["name"] == "rel-loan-prequal"
    assert pipeline["spec"]["database"] == {"secretName": "retail-db"}
    assert pipeline["spec"]["encryption"]["keySecretName"] == "rel-loan-prequal-pan-keys"
    assert pipeline["spec"]["encryption"]["indexKeyVersion"] == 1
    assert pipeline["spec"]["encryption"]["webhookKeyVersion"] == 1
    # Raising a key version rolls the pods that hold that Secret (each reads its keys once).
    raised = documents(render("loan-prequal", "--set", "pipeline.encryption.webhookKeyVersion=2"))
    rolled = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]
        for d in by_kind(raised, "Deployment")
    }
    for name in ("rel-loan-prequal-api", "rel-loan-prequal-webhooks"):
        assert rolled[name]["prequal.dev/webhook-key-version"] == "2"
    [raised_pipeline] = by_kind(raised, "LoanPipeline")
    assert raised_pipeline["spec"]["encryption"]["webhookKeyVersion"] == 2
    index_mounts = [
        name
        for d in deployments.values()
        for v in d["spec"]["template"]["spec"].get("volumes", [])
        for name in [s["secret"]["name"] for s in v.get("projected", {}).get("sources", [])]
        if name.endswith("-index")
    ]
    assert index_mounts == ["rel-loan-prequal-pan-keys-index"]  # the API's, no one else's


def test_each_service_takes_its_database_role_secret_and_falls_back_to_the_single_one() -> None:
    """docs/database-roles.md: database.roleSecrets.<service> names the Secret whose `url`
    connects as that service's role; a service without one, and the migrations Job (the owner),
    use database.secretName."""
    docs = documents(
        render(
            "loan-prequal",
            "--set",
            "database.secretName=retail-owner",
            "--set",
            "database.roleSecrets.api=retail-db-api",
            "--set",
            "database.roleSecrets.credit=retail-db-credit",
            "--set",
            "database.roleSecrets.decision=retail-db-decision",
        )
    )
    deployments = _deployments(docs)
    expected = {
        "api": "retail-db-api",
        "publisher": "retail-owner",  # no role Secret given: the single-Secret fallback
        "credit": "retail-db-credit",
        "decision": "retail-db-decision",
    }
    for component, secret in expected.items():
        container = deployments[f"rel-loan-prequal-{component}"]["spec"]["template"]["spec"][
            "containers"
        ][0]
        assert env_of(container)["DATABASE_URL"] == {
            "secretKeyRef": {"name": secret, "key": "url"}
        }, component
    [job] = by_kind(docs, "Job")
    [migrations] = job["spec"]["template"]["spec"]["containers"]
    assert env_of(migrations)["DATABASE_URL"]["secretKeyRef"]["name"] == "retail-owner"
    unknown = helm(
        "template", "rel", str(CHARTS / "loan-prequal"), "--set", "database.roleSecrets.x=y"
    )
    assert unknown.returncode != 0
    assert "additional properties 'x' not allowed" in unknown.stderr


def test_network_policies_deny_by_default_and_allow_only_the_real_flows() -> None:
    docs = documents(render("loan-prequal"))
    policies = policies_of(docs)
    deny = policies["default-deny"]
    assert deny["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "loan-prequal",
        "app.kubernetes.io/instance": "rel",
    }
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny
    assert "egress" not in deny
    # Every pod the chart renders is covered by the deny policy.
    for doc in [*by_kind(docs, "Deployment"), *by_kind(docs, "Job")]:
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert deny["podSelector"]["matchLabels"].items() <= labels.items(), doc["metadata"]["name"]

    def egress_ports(name: str) -> set[int]:
        return {p["port"] for rule in policies[name]["egress"] for p in rule["ports"]}

    # PostgreSQL, and the identity provider's JWKS (any address on 443 unless narrowed): the
    # real node found that without it no token verifies.
    assert egress_ports("api") == {5432, 443}
    assert egress_ports("publisher") == {5432, 9092}
    assert egress_ports("credit") == egress_ports("decision") == {5432, 9092}
    # The dispatcher also reaches the receivers (by default anywhere, on 443 and 80).
    assert egress_ports("webhooks") == {5432, 9092, 443, 80}
    assert egress_ports("migrations") == {5432}
    assert egress_ports("dns") == {53}
    api_from = policies["api"]["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    } in api_from
    api_rules = policies["api"]["ingress"]
    assert [r["ports"] for r in api_rules] == [
        [{"port": "http", "protocol": "TCP"}],
        [{"port": "metrics", "protocol": "TCP"}],  # monitoring reaches only /metrics' port
    ]
    [jwks] = [r for r in policies["api"]["egress"] if r["ports"][0]["port"] == 443]
    assert "to" not in jwks
    narrowed = policies_of(
        documents(
            render(
                "loan-prequal",
                "--set",
                "networkPolicy.identityProvider.to[0].ipBlock.cidr=10.1.2.3/32",
                "--set",
                "networkPolicy.identityProvider.ports={4444}",
            )
        )
    )
    assert narrowed["api"]["egress"][1] == {
        "ports": [{"port": 4444, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}],
    }
    for worker in ("publisher", "credit", "decision", "webhooks"):
        [rule] = policies[worker]["ingress"]
        assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert (
        policies_of(documents(render("loan-prequal", "--set", "networkPolicy.enabled=false"))) == {}
    )


def test_the_ingress_routes_only_public_paths_and_production_turns_docs_off() -> None:
    """/metrics lives on its own port, /health and /ready stay inside the cluster."""

    def ingress_paths(*args: str) -> set[str]:
        [ingress] = [d for d in documents(render("loan-prequal", *args)) if d["kind"] == "Ingress"]
        return {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}

    dev = ingress_paths("-f", str(CHARTS / "loan-prequal/ci/kind-values.yaml"))
    assert dev == {"/applications", "/docs", "/docs-assets", "/openapi.json", "/redoc"}
    production = CHARTS / "loan-prequal/ci/production-values.yaml"
    assert ingress_paths("-f", str(production)) == {"/applications"}
    docs = documents(render("loan-prequal", "-f", str(production)))
    [api] = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-api")
    ]
    env = {
        e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["API_DOCS_ENABLED"] == "false"
    assert env["OIDC_ISSUER"] == "https://login.example.com/"
    [service] = [
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-api")
    ]
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "metrics"}
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert all(m["spec"]["endpoints"][0]["port"] == "metrics" for m in monitors)
