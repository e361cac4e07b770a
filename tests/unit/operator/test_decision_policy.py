"""The decision policy the operator writes to the pipeline ConfigMap, with its version."""

from __future__ import annotations

import json

from loan_operator.decision_policy import DEFAULT_DECISION_POLICY, policy_version, with_defaults
from loan_operator.reconcile import config_map_data
from loan_operator.spec import parse_spec

RAW = {
    "kafka": {"bootstrapServers": "k:9092"},
    "database": {"secretName": "db"},
    "encryption": {"keySecretName": "keys"},
}


def test_a_partial_policy_is_completed_with_the_defaults_nested_objects_too() -> None:
    document = with_defaults({"minCreditScore": 700, "processingFee": {"rate": "0.0100"}})
    assert document["minCreditScore"] == 700
    assert document["processingFee"] == {
        "rate": "0.0100",
        "minimum": "1000.00",
        "maximum": "25000.00",
    }
    assert document["scoreBands"] == DEFAULT_DECISION_POLICY["scoreBands"]


def test_the_configmap_carries_the_document_its_version_and_the_older_settings() -> None:
    spec = parse_spec({**RAW, "decisionPolicy": {"minCreditScore": 700, "termMonths": 36}})
    data = config_map_data(spec)
    document = json.loads(data["DECISION_POLICY"])
    assert (document["minCreditScore"], document["termMonths"]) == (700, 36)
    assert data["DECISION_POLICY_VERSION"] == policy_version(document)
    assert (data["DECISION_MIN_CREDIT_SCORE"], data["DECISION_TERM_MONTHS"]) == ("700", "36")


def test_a_challenger_is_written_beside_the_policy_and_emptied_when_removed() -> None:
    spec = parse_spec({**RAW, "challengerPolicy": {"minCreditScore": 700}})
    data = config_map_data(spec)
    challenger = json.loads(data["DECISION_CHALLENGER_POLICY"])
    assert challenger == with_defaults({"minCreditScore": 700})
    assert data["DECISION_CHALLENGER_POLICY_VERSION"] == policy_version(challenger)
    assert data["DECISION_CHALLENGER_POLICY_VERSION"] != data["DECISION_POLICY_VERSION"]
    without = config_map_data(parse_spec(RAW))
    assert without["DECISION_CHALLENGER_POLICY"] == ""
    assert without["DECISION_CHALLENGER_POLICY_VERSION"] == ""


def test_another_policy_has_another_version_and_the_same_one_the_same() -> None:
    default = config_map_data(parse_spec(RAW))["DECISION_POLICY_VERSION"]
    assert config_map_data(parse_spec(RAW))["DECISION_POLICY_VERSION"] == default
    changed = parse_spec({**RAW, "decisionPolicy": {"offerValidityDays": 7}})
    assert config_map_data(changed)["DECISION_POLICY_VERSION"] != default
