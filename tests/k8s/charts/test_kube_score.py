"""kube-score on both charts as rendered for every CI scenario: no critical finding, except the
checks each chart turns off by name with kube-score's own annotation (`kube-score/ignore`), each
with its reason in docs/kubernetes.md ("What kube-score says")."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from devstack.tools import REPO_ROOT, tool

from .conftest import CHART_NAMES, ci_values, documents, render, run

SCENARIOS = [(chart, None) for chart in CHART_NAMES] + [
    (chart, values) for chart in CHART_NAMES for values in ci_values(chart)
]
IDS = [f"{chart}:{values.name if values else 'defaults'}" for chart, values in SCENARIOS]
# The checks the charts turn off with kube-score's annotation, each explained in
# docs/kubernetes.md: container-resources is the only one that checks CPU limits.
IGNORABLE = {"container-resources"}
# What a CI scenario turns off on purpose, so kube-score is told not to look for it there.
SCENARIO_CHOICES = {
    "loan-prequal:fixed-replicas-values.yaml": ["pod-networkpolicy"],  # networkPolicy off
    "loan-prequal:kind-values.yaml": ["container-image-pull-policy"],  # kind loads images
}


def score(manifests: str, ignore: Sequence[str] = ()) -> list[str]:
    """kube-score's critical findings, one line each ("[CRITICAL] name Kind: (container) why")."""
    ignored = [arg for check in ignore for arg in ("--ignore-test", check)]
    done = run(
        tool("kube-score"),
        "score",
        "--output-format",
        "ci",
        "--kubernetes-version",
        "v1.34",
        *ignored,
        "-",
        stdin=manifests,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: something below the threshold
    return [line for line in done.stdout.splitlines() if line.startswith("[CRITICAL]")]


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=IDS)
def test_kube_score_finds_nothing_critical(chart: str, values: Path | None) -> None:
    manifests = render(chart, *(["-f", str(values)] if values else []))
    choices = SCENARIO_CHOICES.get(f"{chart}:{values.name}" if values else chart, [])
    assert score(manifests, choices) == []


def test_every_ignored_check_is_one_the_docs_explain() -> None:
    docs = (REPO_ROOT / "docs" / "kubernetes.md").read_text()
    for chart in CHART_NAMES:
        for doc in documents(render(chart)):
            for meta in (
                doc["metadata"],
                doc.get("spec", {}).get("template", {}).get("metadata", {}),
            ):
                ignored = (meta.get("annotations") or {}).get("kube-score/ignore", "")
                for check in filter(None, re.split(r"\s*,\s*", ignored)):
                    assert check in IGNORABLE, f"{doc['kind']}/{doc['metadata']['name']}: {check}"
                    assert f"`{check}`" in docs, f"docs/kubernetes.md does not explain {check}"


def test_the_scorer_does_find_what_the_charts_fixed() -> None:
    """Without its resources and probes a Deployment scores critical: the test can fail."""
    bare = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: bare, namespace: lending}
spec:
  selector: {matchLabels: {app: bare}}
  template:
    metadata: {labels: {app: bare}}
    spec:
      containers: [{name: bare, image: "loan-prequal:0.1.0"}]
"""
    findings = score(bare)
    assert any(
        "container-ephemeral-storage-request-and-limit" in f or "Ephemeral" in f for f in findings
    ), findings
