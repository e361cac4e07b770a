"""What the chart tests share: the real helm and kubeconform, local schemas, and the CRDs.

Everything runs offline: Kubernetes' JSON schemas come from `make tools`
(.tools/kubernetes-json-schema), the CRD schemas are converted from the CRDs themselves (ours
from manifests/crds, the Prometheus Operator's minimal ones from ./crds).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.tools import REPO_ROOT, tool, tools_bin

CHARTS = REPO_ROOT / "charts"
CHART_NAMES = ("loan-operator", "loan-prequal")
LOANPIPELINE_CRD = REPO_ROOT / "manifests" / "crds" / "loanpipelines.prequal.dev.yaml"
OPERATOR_RBAC = REPO_ROOT / "manifests" / "operator" / "rbac.yaml"
MONITORING_CRDS = sorted((Path(__file__).parent / "crds").glob("*.yaml"))

Manifest = dict[str, Any]
# What a pod's servers must listen on to be reached through a Service, and the writable mount.
ANY_ADDRESS = "0.0.0.0"  # noqa: S104
POD_TMP = "/tmp"  # noqa: S108


def ci_values(chart: str) -> list[Path]:
    return sorted((CHARTS / chart / "ci").glob("*-values.yaml"))


def run(
    *argv: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=timeout
    )


def helm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run(tool("helm"), *args, timeout=timeout)


def render(chart: str, *args: str, release: str = "rel", namespace: str = "lending") -> str:
    """`helm template` output, or a test failure with helm's own message."""
    done = helm("template", release, str(CHARTS / chart), "-n", namespace, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def documents(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def pod_specs(docs: list[Manifest]) -> list[tuple[str, Manifest]]:
    """(name, pod spec) of every workload and bare Pod in a rendering."""
    found = []
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            found.append((doc["metadata"]["name"], doc["spec"]["template"]["spec"]))
        elif doc["kind"] == "Pod":
            found.append((doc["metadata"]["name"], doc["spec"]))
    return found


def env_of(container: Manifest) -> dict[str, Any]:
    """A container's environment: each name to its value, or to its `valueFrom`."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def policies_of(docs: list[Manifest]) -> dict[str, Manifest]:
    """The NetworkPolicies' specs by name, without the release's prefix."""
    return {
        p["metadata"]["name"].removeprefix("rel-loan-prequal-"): p["spec"]
        for p in by_kind(docs, "NetworkPolicy")
    }


def _strict(schema: Any) -> Any:
    """A CRD's structural schema as kubeconform's strict mode reads it: unknown fields refused
    wherever the CRD lists properties, unless it preserves unknown fields there."""
    if isinstance(schema, dict):
        out = {key: _strict(value) for key, value in schema.items()}
        if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        if out.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return out
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def crd_json_schemas(crd_files: list[Path], into: Path) -> None:
    """Write {group}/{kind}_{version}.json for every served version of every CRD."""
    for path in crd_files:
        for crd in documents(path.read_text()):
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"].lower()
            for version in crd["spec"]["versions"]:
                schema = _strict(version["schema"]["openAPIV3Schema"])
                schema["properties"]["metadata"] = {"type": "object"}
                target = into / group / f"{kind}_{version['name']}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema))


@pytest.fixture(scope="session")
def loanpipeline_crd() -> Path:
    if not LOANPIPELINE_CRD.exists():
        pytest.skip(
            f"{LOANPIPELINE_CRD.relative_to(REPO_ROOT)} is not there yet (the operator's issue)"
        )
    return LOANPIPELINE_CRD


@pytest.fixture(scope="session")
def crd_schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    into = tmp_path_factory.mktemp("crd-schemas")
    crd_json_schemas(
        [*MONITORING_CRDS, *([LOANPIPELINE_CRD] if LOANPIPELINE_CRD.exists() else [])], into
    )
    return into


@pytest.fixture(scope="session")
def kubeconform(crd_schemas: Path) -> Callable[[str], list[dict[str, Any]]]:
    """Validate YAML text strictly, offline; returns kubeconform's JSON result per resource."""
    k8s_schemas = tools_bin().parent / "kubernetes-json-schema"
    if not (k8s_schemas / "deployment-apps-v1.json").exists():
        pytest.fail(f"no Kubernetes JSON schemas in {k8s_schemas}: run `make tools`")

    def validate(text: str) -> list[dict[str, Any]]:
        done = run(
            tool("kubeconform"),
            "-strict",
            "-output",
            "json",
            "-verbose",
            "-schema-location",
            f"{k8s_schemas}/{{{{.ResourceKind}}}}{{{{.KindSuffix}}}}.json",
            "-schema-location",
            f"{crd_schemas}/{{{{.Group}}}}/{{{{.ResourceKind}}}}_{{{{.ResourceAPIVersion}}}}.json",
            "-",
            stdin=text,
        )
        resources: list[dict[str, Any]] = json.loads(done.stdout)["resources"]
        return resources

    return validate
