"""The topic plan: create, adopt, raise, correct drift — and refuse what Kafka cannot do."""

from __future__ import annotations

from loan_operator.spec import DlqSpec, KafkaSpec
from loan_operator.topics import ObservedTopic, desired_topics, plan_topics

KAFKA = KafkaSpec(
    bootstrap_servers="k:9092",
    topic_prefix="retail.",
    partitions=3,
    config={"retention.ms": "604800000"},
    dlq=DlqSpec(1, {"retention.ms": "1209600000"}),
)


def observed_as_desired() -> dict[str, ObservedTopic]:
    return {
        t.name: ObservedTopic(t.name, t.partitions, t.replication_factor, {**t.config, "x": "y"})
        for t in desired_topics(KAFKA)
    }


def test_desired_topics_are_prefixed_and_each_has_a_dlq() -> None:
    names = {t.name: (t.partitions, dict(t.config)) for t in desired_topics(KAFKA)}
    assert names == {
        "retail.loan_applications_submitted": (3, {"retention.ms": "604800000"}),
        "retail.loan_applications_submitted_dlq": (1, {"retention.ms": "1209600000"}),
        "retail.credit_reports_generated": (3, {"retention.ms": "604800000"}),
        "retail.credit_reports_generated_dlq": (1, {"retention.ms": "1209600000"}),
        "retail.loan_applications_decided": (3, {"retention.ms": "604800000"}),
        "retail.loan_applications_decided_dlq": (1, {"retention.ms": "1209600000"}),
    }


def test_missing_topics_are_created() -> None:
    plan = plan_topics(desired_topics(KAFKA), {})
    assert len(plan.create) == 6
    assert not plan.refused


def test_matching_topics_are_adopted_without_changes_and_extra_broker_config_is_not_drift() -> None:
    plan = plan_topics(desired_topics(KAFKA), observed_as_desired())
    assert plan.empty
    assert not plan.refused


def test_partitions_below_spec_are_raised() -> None:
    observed = observed_as_desired()
    name = "retail.loan_applications_submitted"
    observed[name] = ObservedTopic(name, 1, 1, {"retention.ms": "604800000"})
    plan = plan_topics(desired_topics(KAFKA), observed)
    assert plan.raise_partitions == {name: 3}


def test_partition_decrease_is_refused_not_planned() -> None:
    observed = observed_as_desired()
    name = "retail.credit_reports_generated"
    observed[name] = ObservedTopic(name, 8, 1, {"retention.ms": "604800000"})
    plan = plan_topics(desired_topics(KAFKA), observed)
    assert plan.empty
    assert "not supported" in plan.refused[name]


def test_replication_factor_change_is_refused() -> None:
    observed = observed_as_desired()
    name = "retail.credit_reports_generated_dlq"
    observed[name] = ObservedTopic(name, 1, 3, {"retention.ms": "1209600000"})
    assert name in plan_topics(desired_topics(KAFKA), observed).refused


def test_config_drift_is_corrected_key_by_key() -> None:
    observed = observed_as_desired()
    name = "retail.loan_applications_submitted_dlq"
    observed[name] = ObservedTopic(name, 1, 1, {"retention.ms": "1"})
    plan = plan_topics(desired_topics(KAFKA), observed)
    assert plan.alter_config == {name: {"retention.ms": "1209600000"}}
