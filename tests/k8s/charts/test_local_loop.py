"""The local Kubernetes loop's files: kind-config.yaml, the Tiltfile, manifests/ and the
Dockerfile. kind and Tilt cannot run here (no container engine), so what can be checked
offline is checked with the real tools: kind's own config loader, helm, kustomize,
kubeconform, promtool, and the API server for the sample pipelines."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.kube import ControlPlane
from devstack.tools import REPO_ROOT, ToolMissingError, tool

from .conftest import LOANPIPELINE_CRD, by_kind, documents, run

Validate = Callable[[str], list[dict[str, Any]]]
KIND_CONFIG = REPO_ROOT / "kind-config.yaml"
TILTFILE = REPO_ROOT / "Tiltfile"
MANIFESTS = REPO_ROOT / "manifests"


def _kustomize_monitoring() -> str:
    built = run(
        tool("kubectl"),
        "kustomize",
        "--load-restrictor=LoadRestrictionsNone",
        str(MANIFESTS / "monitoring"),
    )
    assert built.returncode == 0, built.stderr
    return built.stdout


# --- kind ------------------------------------------------------------------------------------


def test_kind_config_passes_kinds_own_validation(tmp_path: Path) -> None:
    checked = run(tool("kind-config-check"), str(KIND_CONFIG))
    assert checked.returncode == 0, checked.stderr
    config = yaml.safe_load(KIND_CONFIG.read_text())
    [node] = config["nodes"]
    assert node["labels"]["ingress-ready"] == "true"
    assert sorted(m["hostPort"] for m in node["extraPortMappings"]) == [80, 443]

    # The same loader refuses what kind would refuse: an unknown field, a clashing host port.
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text(KIND_CONFIG.read_text().replace("extraPortMappings", "extraPortMapping"))
    clash = tmp_path / "clash.yaml"
    clash.write_text(KIND_CONFIG.read_text().replace("hostPort: 443", "hostPort: 80"))
    for broken, reason in ((misspelt, "extraPortMapping"), (clash, "80")):
        refused = run(tool("kind-config-check"), str(broken))
        assert refused.returncode == 1, broken.name
        assert reason in refused.stderr


# --- Tilt ------------------------------------------------------------------------------------


def test_tiltfile_evaluates_with_tilt(control_plane: ControlPlane, tmp_path: Path) -> None:
    try:
        tilt = tool("tilt")
    except ToolMissingError:
        pytest.skip(
            "tilt is not installed: the Go module proxy answers 403 'This module version is not "
            "available' for github.com/tilt-dev/tilt, so `make tools` cannot build it here "
            "(test_tiltfile_logic_against_the_real_charts evaluates the Tiltfile's logic instead)"
        )
    kubeconfig = yaml.safe_load(control_plane.kubeconfig.read_text())
    kubeconfig["contexts"][0]["name"] = kubeconfig["current-context"] = "kind-prequal"
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    evaluated = run(
        "env",
        f"KUBECONFIG={tmp_path / 'kubeconfig'}",
        tilt,
        "alpha",
        "tiltfile-result",
        "-f",
        str(TILTFILE),
        timeout=240,  # below pytest's 300 s, so a hang fails with its own message
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "prequal-api" in evaluated.stdout


class TiltRecorder:
    """Tilt's Tiltfile API as recording stubs, with helm() and kustomize() done by the real
    tools. A stand-in for `tilt alpha tiltfile-result`: it runs the Tiltfile's own logic (the
    file is Python-compatible Starlark) but not Tilt's checks of it."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = {}
        self.yaml: list[dict[str, Any]] = []
        self.config = type(
            "Config",
            (),
            {
                "define_string": self._record("config.define_string"),
                "define_bool": self._record("config.define_bool"),
                "parse": staticmethod(lambda: {}),
            },
        )

    def _record(self, name: str) -> Callable[..., None]:
        def call(*args: Any, **kwargs: Any) -> None:
            self.calls.setdefault(name, []).append((args, kwargs))

        return staticmethod(call) if name.startswith("config.") else call  # type: ignore[return-value]

    def helm(
        self,
        chart: str,
        name: str,
        namespace: str,
        values: list[str] | None = None,
        set: list[str] | None = None,
    ) -> str:
        argv = [
            tool("helm"),
            "template",
            name,
            str(REPO_ROOT / chart),
            "-n",
            namespace,
            "--include-crds",
        ]
        for path in values or []:
            argv += ["-f", str(REPO_ROOT / path)]
        for assignment in set or []:
            argv += ["--set", assignment]
        done = run(*argv)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def kustomize(self, path: str, flags: list[str] | None = None) -> str:
        done = run(tool("kubectl"), "kustomize", *(flags or []), str(REPO_ROOT / path))
        assert done.returncode == 0, done.stderr
        return done.stdout

    def k8s_yaml(self, source: str | list[str]) -> None:
        if isinstance(source, list):
            for path in source:
                self.yaml += documents((REPO_ROOT / path).read_text())
        else:
            self.yaml += documents(source)

    def namespace(self) -> dict[str, Any]:
        names = [
            "version_settings",
            "allow_k8s_contexts",
            "update_settings",
            "local_resource",
            "k8s_resource",
            "docker_build",
            "fall_back_on",
            "sync",
            "link",
        ]
        scope: dict[str, Any] = {name: self._record(name) for name in names}
        scope.update(
            config=self.config, helm=self.helm, kustomize=self.kustomize, k8s_yaml=self.k8s_yaml
        )
        return scope


def test_tiltfile_logic_against_the_real_charts() -> None:
    recorder = TiltRecorder()
    exec(compile(TILTFILE.read_text(), str(TILTFILE), "exec"), recorder.namespace())  # noqa: S102 - our own Tiltfile, with stubs
    calls = recorder.calls
    assert calls["allow_k8s_contexts"] == [(("kind-prequal",), {})]

    workloads = {
        d["metadata"]["name"]
        for d in recorder.yaml
        if d["kind"] in ("Deployment", "StatefulSet", "Job")
    }
    objects = {f"{d['metadata']['name']}:{d['kind'].lower()}" for d in recorder.yaml}
    resources: dict[str, dict[str, Any]] = {}
    for args, kwargs in calls["k8s_resource"]:
        name = kwargs.get("new_name") or args[0]
        if "new_name" not in kwargs:
            assert name in workloads, f"k8s_resource names no workload: {name}"
        for obj in kwargs.get("objects", []):
            assert obj in objects, f"{name}: no such object {obj}"
        assert kwargs.get("labels"), f"{name} has no labels"
        resources[name] = kwargs
    for args, kwargs in calls.get("local_resource", []):
        resources[args[0]] = kwargs
    # Every workload is a labelled resource, and every dependency names one.
    assert workloads <= set(resources)
    for name, kwargs in resources.items():
        for dep in kwargs.get("resource_deps", []):
            assert dep in resources, f"{name} depends on unknown {dep}"

    def before(first: str, then: str) -> bool:
        seen, todo = set(), [then]
        while todo:
            current = todo.pop()
            if current == first:
                return True
            if current not in seen:
                seen.add(current)
                todo += resources[current].get("resource_deps", [])
        return False

    assert before("crds", "loan-operator")
    assert before("postgres", "prequal-api")
    assert before("kafka", "prequal-api")
    # The dev Kafka's CA, certificate and SCRAM Secrets are made before the broker and the
    # operator start, by the module `make cluster` runs too.
    assert before("kafka-identity", "kafka")
    assert before("kafka-identity", "loan-operator")
    assert "-m devstack.cluster_kafka --context kind-prequal" in resources["kafka-identity"]["cmd"]
    assert before("prequal-migrations", "prequal-api")
    for consumer in ("prequal-credit", "prequal-decision", "prequal-webhooks", "prequal-publisher"):
        assert before("pipeline", consumer)
        assert before("loan-operator", consumer)

    builds = {args[0]: kwargs for args, kwargs in calls["docker_build"]}
    assert set(builds) == {"loan-prequal", "loan-prequal-operator"}
    assert builds["loan-prequal"]["target"] == "dev"
    assert builds["loan-prequal"]["live_update"]
    # The operator's image reloads nothing, so it is rebuilt rather than live-updated.
    assert builds["loan-prequal-operator"]["target"] == "runtime"
    assert "live_update" not in builds["loan-prequal-operator"]
    for build in builds.values():
        assert "services" in build["only"]
    images = {
        d["metadata"]["name"]: {c["image"] for c in d["spec"]["template"]["spec"]["containers"]}
        for d in recorder.yaml
        if d["kind"] in ("Deployment", "Job")
    }
    assert images.pop("loan-operator") == {"loan-prequal-operator:dev"}
    platform = {i for name, found in images.items() if name.startswith("prequal-") for i in found}
    assert platform == {"loan-prequal:dev"}
    # The LoanPipeline Tilt applies is valid for the operator it deploys.
    [pipeline] = by_kind(recorder.yaml, "LoanPipeline")
    assert pipeline["spec"]["kafka"]["bootstrapServers"] == "kafka.lending.svc.cluster.local:9092"
    assert {c["deployment"] for c in pipeline["spec"]["consumers"]} == {
        "prequal-credit",
        "prequal-decision",
        "prequal-webhooks",
    }


# --- manifests -------------------------------------------------------------------------------


def test_dev_and_monitoring_manifests_are_valid(kubeconform: Validate) -> None:
    dev = "\n---\n".join(p.read_text() for p in sorted((MANIFESTS / "dev").glob("*.yaml")))
    results = kubeconform(dev + "\n---\n" + _kustomize_monitoring())
    assert len(results) >= 20
    assert [
        (r["kind"], r["name"], r.get("msg")) for r in results if r["status"] != "statusValid"
    ] == []
    kinds = {(r["kind"], r["name"]) for r in results}
    assert {
        ("StatefulSet", "kafka"),
        ("StatefulSet", "postgres"),
        ("Secret", "prequal-db"),
    } <= kinds
    [secret] = [d for d in documents(dev) if d["kind"] == "Secret"]
    assert re.fullmatch(r"postgresql://prequal@[^:@/]+:5432/prequal", secret["stringData"]["url"])


def test_monitoring_uses_the_charts_files_and_a_config_promtool_accepts(tmp_path: Path) -> None:
    docs = documents(_kustomize_monitoring())
    maps = {d["metadata"]["name"]: d["data"] for d in by_kind(docs, "ConfigMap")}
    files = REPO_ROOT / "charts/loan-prequal/files"
    assert (
        maps["prometheus-rules"]["alerts.rules.yaml"] == (files / "alerts.rules.yaml").read_text()
    )
    for path in sorted((files / "dashboards").glob("*.json")):
        assert maps["grafana-dashboards"][path.name] == path.read_text()
    for link in (MANIFESTS / "monitoring/files").iterdir():
        assert link.is_symlink(), f"{link.name} must link to the chart's file, not copy it"

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "alerts.rules.yaml").write_text(maps["prometheus-rules"]["alerts.rules.yaml"])
    config = yaml.safe_load(maps["prometheus-config"]["prometheus.yml"])
    config["rule_files"] = [f"{rules}/*.yaml"]
    [job] = config["scrape_configs"]
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["lending", "prequal-system"]
    # Debian's Prometheus is built without Kubernetes service discovery, so promtool checks
    # the rest of the job (relabelling included) with a static target in its place.
    del job["kubernetes_sd_configs"]
    job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = run(tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "6 rules found" in checked.stdout
    relabelled = {r.get("target_label") for r in job["relabel_configs"]}
    assert "job" in relabelled  # the alert rules' `up{job=~...}` relies on component job names
    [ingress] = by_kind(docs, "Ingress")
    paths = {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert paths == {"/grafana", "/prometheus"}


def test_tenant_samples_are_two_pipelines_the_api_server_accepts(
    control_plane: ControlPlane, kubeconform: Validate
) -> None:
    assert LOANPIPELINE_CRD.exists()
    samples = sorted((MANIFESTS / "samples/tenants").glob("*.yaml"))
    text = "\n---\n".join(p.read_text() for p in samples)
    assert all(r["status"] == "statusValid" for r in kubeconform(text))
    pipelines = by_kind(documents(text), "LoanPipeline")
    assert len(pipelines) == 2
    assert len({p["metadata"]["namespace"] for p in pipelines}) == 2
    assert len({p["spec"]["kafka"]["topicPrefix"] for p in pipelines}) == 2
    kubectl = [tool("kubectl"), "--kubeconfig", str(control_plane.kubeconfig)]
    crd = run(*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(LOANPIPELINE_CRD))
    assert crd.returncode == 0, crd.stderr
    established = run(
        *kubectl,
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/loanpipelines.prequal.dev",
    )
    assert established.returncode == 0, established.stderr
    # Server-side validation: the CRD's schema and CEL rules, with the namespaces created first.
    applied = run(*kubectl, "apply", "--server-side", "-f", str(MANIFESTS / "samples/tenants"))
    try:
        assert applied.returncode == 0, applied.stderr
        listed = run(*kubectl, "get", "lp", "-A", "-o", "json")
    finally:
        # Leave nothing for other tests' cluster-wide operators to reconcile.
        run(*kubectl, "delete", "-f", str(MANIFESTS / "samples/tenants"), "--wait=false")
    names = {
        (i["metadata"]["namespace"], i["metadata"]["name"])
        for i in json.loads(listed.stdout)["items"]
    }
    assert {("personal-loans", "personal-loans"), ("home-loans", "home-loans")} <= names


# --- the image -------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", dockerfile, re.MULTILINE)
    # The last stage is what a plain `docker build .` gives: the runtime image.
    assert [name for _, name in stages] == ["deps", "build", "dev", "runtime"]
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", dockerfile, re.MULTILINE)
    assert "--require-hashes" in dockerfile
    runtime = dockerfile.split(" AS runtime")[1]
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert "COPY services" not in runtime, "the runtime image carries no source tree"
    users = re.findall(r"^USER (\S+)$", runtime, re.MULTILINE)
    assert users == ["10001:10001"]
    charts_uid = yaml.safe_load((REPO_ROOT / "charts/loan-prequal/values.yaml").read_text())
    assert charts_uid["podSecurityContext"]["runAsUser"] == 10001
    for source in re.findall(r"^COPY (?:--chown=\S+ )?(.+) \S+$", dockerfile, re.MULTILINE):
        if not source.startswith("--from"):
            for path in source.split():
                assert (REPO_ROOT / path).exists(), f"COPY of a missing {path}"


def test_dockerignore_sends_only_what_the_image_needs() -> None:
    lines = [
        line
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {
        "requirements.lock",
        "pyproject.toml",
        "README.md",
        "services",
        "operator",
        "images/runtime-requirements.py",
    }


def test_every_runtime_dependency_is_pinned_by_the_lock() -> None:
    """The image installs pyproject's runtime dependencies constrained by requirements.lock:
    each must be pinned there, or the image would float."""
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPO_ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith(" ")
    }
    for requirement in dependencies:
        name = re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pinned, requirement


def test_no_secret_material_in_the_deployment_files() -> None:
    """No password, token or key in anything this issue ships: keys are generated at run time."""
    paths = [
        KIND_CONFIG,
        TILTFILE,
        REPO_ROOT / "Dockerfile",
        *MANIFESTS.glob("**/*.yaml"),
        *(REPO_ROOT / "charts").glob("**/*.yaml"),
    ]
    suspicious = re.compile(
        r"(password|passwd|token|secret_key|api_key)\s*[:=]\s*\S{6,}", re.IGNORECASE
    )
    pem = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
    for path in paths:
        if path.is_file():
            text = path.read_text()
            assert not suspicious.search(text), path
            assert not pem.search(text), path
            assert not re.search(r"postgresql://[^@\s/]+:[^@\s/]+@", text), (
                f"password in a URL: {path}"
            )
