"""The alert rules pass promtool, every alert has a firing and a quiet unit test, and each one
carries the annotations an on-call engineer needs (summary, description, a runbook section)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.tools import REPO_ROOT, tool

RULES = REPO_ROOT / "charts/loan-prequal/files/alerts.rules.yaml"
RULE_TESTS = Path(__file__).parent / "alerts.test.yaml"
RUNBOOKS = REPO_ROOT / "docs/runbooks.md"
REQUIRED_ALERTS = {
    "PrequalApiHighErrorRate",
    "PrequalApiHighLatency",
    "PrequalConsumerLagHigh",
    "PrequalDeadLetterGrowth",
    "PrequalOutboxStale",
    "PrequalServiceDown",
}


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rule_file() -> None:
    checked = _promtool("check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(_alerts())} rules found" in checked.stdout


def test_promtool_unit_tests_of_every_alert_pass() -> None:
    tested = _promtool("test", "rules", RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_firing_case_and_a_quiet_case() -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names == REQUIRED_ALERTS
    assert fires == names
    assert quiet == names


def test_the_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """A rule file with the error-rate threshold at 50 % must fail the same unit tests."""
    rules_dir = tmp_path / "charts/loan-prequal/files"
    rules_dir.mkdir(parents=True)
    text = RULES.read_text()
    assert "> 0.05" in text
    (rules_dir / RULES.name).write_text(text.replace("> 0.05", "> 0.5"))
    tests_dir = tmp_path / "tests/unit/observability"
    tests_dir.mkdir(parents=True)
    shutil.copy(RULE_TESTS, tests_dir / RULE_TESTS.name)
    tested = _promtool("test", "rules", tests_dir / RULE_TESTS.name)
    assert tested.returncode != 0
    assert "PrequalApiHighErrorRate" in tested.stdout + tested.stderr


@pytest.mark.parametrize("alert", sorted(REQUIRED_ALERTS))
def test_each_alert_has_summary_description_and_a_runbook_section(alert: str) -> None:
    [rule] = [r for r in _alerts() if r["alert"] == alert]
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    anchor = f"runbook-{alert.lower()}"
    assert annotations["runbook"] == f"README.md#{anchor}"
    assert rule["labels"]["severity"] in {"warning", "critical"}
    # The long form of every README runbook section lives in docs/runbooks.md, same anchor.
    headings = re.findall(r"^#+ (.+)$", RUNBOOKS.read_text(), re.M)
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
    assert anchor in anchors
