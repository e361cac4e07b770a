"""Conditions keep the standard shape and move lastTransitionTime only on a status change."""

from __future__ import annotations

from loan_operator.conditions import READY, TOPICS_READY, set_condition, with_ready


def test_transition_time_moves_only_when_status_changes() -> None:
    first = set_condition(
        {}, TOPICS_READY, ok=False, reason="KafkaUnreachable", message="a", generation=1, now="t1"
    )
    again = set_condition(
        first, TOPICS_READY, ok=False, reason="TopicError", message="b", generation=2, now="t2"
    )
    fixed = set_condition(
        again, TOPICS_READY, ok=True, reason="TopicsReconciled", message="", generation=2, now="t3"
    )
    assert again[TOPICS_READY]["lastTransitionTime"] == "t1"
    assert again[TOPICS_READY]["reason"] == "TopicError"
    assert fixed[TOPICS_READY]["lastTransitionTime"] == "t3"
    assert set(fixed[TOPICS_READY]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }


def test_ready_carries_the_first_failing_reason() -> None:
    conditions = {}
    parts = (
        ("TopicsReady", False),
        ("SecretsReady", True),
        ("KafkaAccessReady", True),
        ("ScalingActive", False),
    )
    for type_, ok in parts:
        conditions = set_condition(
            conditions, type_, ok=ok, reason=f"R{type_}", message="m", generation=1, now="t"
        )
    ready = with_ready(conditions, generation=1, now="t")[READY]
    assert (ready["status"], ready["reason"]) == ("False", "RTopicsReady")


def test_ready_is_true_when_every_part_is() -> None:
    conditions = {}
    for type_ in ("TopicsReady", "SecretsReady", "KafkaAccessReady", "ScalingActive"):
        conditions = set_condition(
            conditions, type_, ok=True, reason="Ok", message="", generation=1, now="t"
        )
    assert with_ready(conditions, generation=1, now="t")[READY]["status"] == "True"
