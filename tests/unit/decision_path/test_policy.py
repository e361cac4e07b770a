"""The policy document: validation, its content-hash version, and agreement with the operator
and the CRD on what the defaults are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from decision_service.policy import DecisionPolicy
from decision_service.settings import DecisionSettings
from loan_operator.decision_policy import DEFAULT_DECISION_POLICY, policy_version, with_defaults

CRD = Path(__file__).parents[3] / "manifests/crds/loanpipelines.prequal.dev.yaml"


def _crd_policy_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    schema: dict[str, Any] = spec["properties"]["decisionPolicy"]
    return schema


def test_defaults_are_todays_rules() -> None:
    policy = DecisionPolicy()
    assert (policy.min_credit_score, policy.term_months) == (650, 48)
    assert policy.manual_review_offer.enabled is False


def test_the_service_operator_and_crd_agree_on_the_default_document() -> None:
    document = DecisionPolicy().document()
    assert document == with_defaults({}) == dict(DEFAULT_DECISION_POLICY)
    crd = _crd_policy_schema()["properties"]
    for key, value in document.items():
        if isinstance(value, dict):
            assert {k: crd[key]["properties"][k]["default"] for k in value} == value
        else:
            assert crd[key]["default"] == value, key


def test_the_version_is_the_content_hash_the_operator_computes_too() -> None:
    raw = {
        "minCreditScore": 700,
        "scoreBands": [{"name": "ALL", "minScore": 300, "annualRate": "0.16"}],
    }
    operator_document = with_defaults(raw)
    policy = DecisionPolicy.model_validate(raw)
    assert policy.version == policy_version(operator_document)
    assert json.loads(policy.text) == operator_document
    assert len(policy.version) == 16


def test_the_same_policy_keeps_its_version_and_any_change_gets_another() -> None:
    assert DecisionPolicy().version == DecisionPolicy.from_json("{}").version
    assert DecisionPolicy(term_months=36).version != DecisionPolicy().version
    changed_rate = DecisionPolicy.model_validate({"processingFee": {"rate": "0.0150"}})
    assert changed_rate.version != DecisionPolicy().version


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"minCreditScore": 200}, "minCreditScore"),
        ({"scoreBands": [{"name": "A", "minScore": 700, "annualRate": "0.12"}]}, "lowest"),
        (
            {
                "scoreBands": [
                    {"name": "A", "minScore": 300, "annualRate": "0.12"},
                    {"name": "A", "minScore": 700, "annualRate": "0.12"},
                ]
            },
            "distinct",
        ),
        ({"scoreBands": [{"name": "A", "minScore": 300, "annualRate": "1.2"}]}, "annualRate"),
        ({"scoreBands": [{"name": "A", "minScore": 300, "annualRate": "0.12345"}]}, "decimal"),
        ({"processingFee": {"minimum": "5000.00", "maximum": "100.00"}}, "must not exceed"),
        ({"limits": {"maxOfferAmount": "0"}}, "maxOfferAmount"),
        ({"offerValidityDays": 0}, "offerValidityDays"),
        ({"unknownKnob": 1}, "unknownKnob"),
    ],
)
def test_an_invalid_document_is_refused_naming_what_is_wrong(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        DecisionPolicy.model_validate(document)


def test_settings_use_the_pipeline_document_and_check_its_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1:1/db")
    document = with_defaults({"minCreditScore": 700})
    monkeypatch.setenv("DECISION_POLICY", json.dumps(document))
    monkeypatch.setenv("DECISION_POLICY_VERSION", policy_version(document))
    assert DecisionSettings().policy().min_credit_score == 700

    monkeypatch.setenv("DECISION_POLICY_VERSION", "0" * 16)
    with pytest.raises(ValidationError, match="does not match"):
        DecisionSettings()
    monkeypatch.delenv("DECISION_POLICY_VERSION")
    monkeypatch.setenv("DECISION_MIN_CREDIT_SCORE", "650")
    with pytest.raises(ValidationError, match="contradicts"):
        DecisionSettings()
    monkeypatch.setenv("DECISION_POLICY", '{"termMonths": 0}')
    monkeypatch.delenv("DECISION_MIN_CREDIT_SCORE")
    with pytest.raises(ValidationError, match="not a valid policy"):
        DecisionSettings()


def test_without_a_document_the_old_settings_make_the_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1:1/db")
    monkeypatch.delenv("DECISION_POLICY", raising=False)
    monkeypatch.setenv("DECISION_MIN_CREDIT_SCORE", "700")
    monkeypatch.setenv("DECISION_TERM_MONTHS", "36")
    policy = DecisionSettings().policy()
    assert (policy.min_credit_score, policy.term_months) == (700, 36)


def test_a_challenger_is_read_checked_and_empty_means_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1:1/db")
    monkeypatch.delenv("DECISION_POLICY", raising=False)
    monkeypatch.setenv("DECISION_CHALLENGER_POLICY", "")
    assert DecisionSettings().challenger() is None
    document = with_defaults({"minCreditScore": 680})
    monkeypatch.setenv("DECISION_CHALLENGER_POLICY", json.dumps(document))
    monkeypatch.setenv("DECISION_CHALLENGER_POLICY_VERSION", policy_version(document))
    challenger = DecisionSettings().challenger()
    assert challenger is not None
    assert challenger.min_credit_score == 680
    monkeypatch.setenv("DECISION_CHALLENGER_POLICY_VERSION", "f" * 16)
    with pytest.raises(ValidationError, match="DECISION_CHALLENGER_POLICY_VERSION"):
        DecisionSettings()
