"""What the Tiltfile applies runs on the real node: its charts with its own values files and
`--set`s (read from the Tiltfile, not copied), its operator image tag, its manifests.

The node may set a key over the Tiltfile's values only when workloads.NODE_OVERRIDES names it
with a reason; these tests fail as soon as the two diverge, in the arguments or in the release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from devstack.tiltfile import helm_calls
from devstack.tools import REPO_ROOT
from devstack.workloads import (
    NAMESPACE,
    NODE_OVERRIDES,
    OPERATOR_CHART,
    OPERATOR_NAMESPACE,
    OPERATOR_RELEASE,
    PLATFORM_CHART,
    RELEASE,
)
from tests.cluster.conftest import RunningCluster


def _flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(values, dict):
        return {prefix: values}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _set_keys(args: list[str]) -> list[str]:
    return [a.removeprefix("--set=").split("=", 1)[0] for a in args if a.startswith("--set=")]


def _tilt_keys(chart: str) -> set[str]:
    call = helm_calls()[chart]
    keys = {s.split("=", 1)[0] for s in call.sets}
    for path in call.values:
        keys |= set(_flatten(yaml.safe_load((REPO_ROOT / path).read_text())))
    return keys


def _is_under(key: str, keys: set[str]) -> bool:
    return any(key == k or key.startswith(f"{k}.") or k.startswith(f"{key}.") for k in keys)


def test_the_node_installs_with_the_tiltfiles_values_and_only_named_overrides(
    cluster: RunningCluster,
) -> None:
    workloads = cluster.workloads
    for chart, args in (
        (OPERATOR_CHART, workloads.operator_values()),
        (PLATFORM_CHART, workloads.platform_values()),
    ):
        tilt = helm_calls()[chart].helm_args()
        assert tilt, f"the Tiltfile has no helm() values for {chart}"
        # The Tiltfile's own arguments first, in its order; the node's after them.
        assert args[: len(tilt)] == tilt, chart
        overridden = [k for k in _set_keys(args[len(tilt) :]) if _is_under(k, _tilt_keys(chart))]
        unexplained = sorted(set(overridden) - set(NODE_OVERRIDES[chart]))
        assert unexplained == [], f"{chart}: the node overrides the Tiltfile's {unexplained}"


def test_the_releases_carry_the_tiltfiles_values(cluster: RunningCluster) -> None:
    for chart, release, namespace in (
        (OPERATOR_CHART, OPERATOR_RELEASE, OPERATOR_NAMESPACE),
        (PLATFORM_CHART, RELEASE, NAMESPACE),
    ):
        supplied = _flatten(
            cluster.workloads.helm_json("get", "values", release, f"--namespace={namespace}")
        )
        call = helm_calls()[chart]
        expected: dict[str, Any] = {}
        for path in call.values:
            expected.update(_flatten(yaml.safe_load((REPO_ROOT / path).read_text())))
        for assignment in call.sets:
            key, value = assignment.split("=", 1)
            expected[key] = value
        for key, value in expected.items():
            if _is_under(key, set(NODE_OVERRIDES[chart])):
                continue
            got = supplied.get(key)
            assert (
                str(got).lower() == str(value).strip("{}").lower()
                or got == value
                or (isinstance(got, list) and [str(v) for v in got] == value.strip("{}").split(","))
            ), f"{release}: {key} is {got!r}, the Tiltfile gives {value!r}"


def test_the_tiltfiles_images_and_manifests_are_what_runs(cluster: RunningCluster) -> None:
    operator = cluster.json("-n", OPERATOR_NAMESPACE, "get", "deployment", OPERATOR_RELEASE)
    [container] = operator["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "loan-prequal-operator:dev"  # the Tiltfile's docker_build name
    api = cluster.json("-n", NAMESPACE, "get", "deployment", f"{RELEASE}-api")
    security = api["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert security["readOnlyRootFilesystem"] is False  # Tilt's live update writes into it
    # Every manifest the Tiltfile's k8s_yaml() names exists on the node.
    tiltfile = (REPO_ROOT / "Tiltfile").read_text()
    for name in ("00-namespaces.yaml", "kafka.yaml", "postgres.yaml"):
        assert f"manifests/dev/{name}" in tiltfile
        assert Path(REPO_ROOT / "manifests" / "dev" / name).exists()
    for what in ("statefulset/kafka", "statefulset/postgres"):
        assert cluster.kubectl("-n", NAMESPACE, "get", what, "-o", "name").strip()
