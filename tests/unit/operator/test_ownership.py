"""Which objects a pipeline may touch: the decisions, before anything is written."""

from __future__ import annotations

from loan_operator.ownership import (
    MANAGED_BY,
    PIPELINE_ANNOTATION,
    ObjectMeta,
    PipelineClaims,
    Refusal,
    config_map_claim,
    deployment_claim,
    deployment_owner,
    secret_claim,
)

OURS = ObjectMeta(dict(MANAGED_BY), {PIPELINE_ANNOTATION: "retail"})


def test_a_secret_is_written_only_when_the_operator_labelled_it_for_this_pipeline() -> None:
    assert secret_claim("retail", "key Secret", "k", OURS) == "ours"
    # Made by an operator from before the annotation: adopted by the first pipeline naming it.
    assert secret_claim("retail", "key Secret", "k", ObjectMeta(dict(MANAGED_BY), {})) == "adopt"
    other = secret_claim("home", "key Secret", "k", OURS)
    assert isinstance(other, Refusal)
    assert (other.reason, "LoanPipeline retail" in other.message) == (
        "OwnedByAnotherPipeline",
        True,
    )
    foreign = secret_claim("retail", "key Secret", "k", ObjectMeta({}, {}))
    assert isinstance(foreign, Refusal)
    assert foreign.reason == "NotManagedByOperator"
    # Another tool's managed-by label is not ours either.
    helm = ObjectMeta({"app.kubernetes.io/managed-by": "Helm"}, {PIPELINE_ANNOTATION: "retail"})
    assert isinstance(secret_claim("retail", "key Secret", "k", helm), Refusal)


def test_the_configmap_is_ours_when_we_control_it_or_an_earlier_pipeline_of_our_name_did() -> None:
    mine = ObjectMeta(dict(MANAGED_BY), {}, (("LoanPipeline", "retail", "uid-1"),))
    assert config_map_claim("retail", "uid-1", "LoanPipeline", "retail-pipeline", mine) == "ours"
    assert config_map_claim("retail", "uid-2", "LoanPipeline", "retail-pipeline", mine) == "adopt"
    orphan = ObjectMeta(dict(MANAGED_BY), {})
    assert config_map_claim("retail", "uid-2", "LoanPipeline", "x", orphan) == "adopt"
    elsewhere = ObjectMeta(dict(MANAGED_BY), {}, (("Deployment", "retail", "uid-9"),))
    assert isinstance(config_map_claim("retail", "uid-2", "LoanPipeline", "x", elsewhere), Refusal)
    assert isinstance(
        config_map_claim("retail", "uid-1", "LoanPipeline", "x", ObjectMeta({}, {})), Refusal
    )


def test_a_deployment_belongs_to_the_oldest_pipeline_naming_it_then_the_lowest_name() -> None:
    older = PipelineClaims("b", "2026-12-01T10:00:00Z", frozenset({"b-credit"}))
    newer = PipelineClaims("a", "2026-12-01T10:00:05Z", frozenset({"b-credit"}))
    assert deployment_owner("b-credit", [newer, older]) == "b"
    assert deployment_claim("b", "b-credit", [newer, older]) == "ours"
    refused = deployment_claim("a", "b-credit", [newer, older])
    assert isinstance(refused, Refusal)
    assert refused.reason == "OwnedByAnotherPipeline"
    same_second = PipelineClaims("a", "2026-12-01T10:00:00Z", frozenset({"b-credit"}))
    assert deployment_owner("b-credit", [older, same_second]) == "a"
    # A pipeline being deleted lets go; a Deployment nobody names is nobody's.
    leaving = PipelineClaims("b", "2026-12-01T10:00:00Z", frozenset({"b-credit"}), deleting=True)
    assert deployment_owner("b-credit", [leaving, newer]) == "a"
    assert deployment_owner("c-credit", [older, newer]) is None
    assert deployment_claim("c", "c-credit", [older, newer]) == "ours"
