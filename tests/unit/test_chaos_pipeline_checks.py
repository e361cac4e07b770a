"""The chaos run's LoanPipeline checks (bench/chaos/pipeline.py): a lastTransitionTime that goes
back is counted, one that only moves forward is not; a topic or Secret whose identity changed,
or that is gone, counts as recreated."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.chaos.pipeline import Identities, ReadyWatch, chaos_pipeline

from devstack.pipeline import load_sample


def _at(minute: int) -> datetime:
    return datetime(2026, 12, 2, 12, minute, tzinfo=UTC)


def _watch(*seen: tuple[str, int]) -> ReadyWatch:
    watch = ReadyWatch("kubeconfig", chaos_pipeline("127.0.0.1:9092"))
    watch.seen = [(status, _at(minute)) for status, minute in seen]
    return watch


def test_ready_flapping_forward_is_counted_as_transitions_not_regressions() -> None:
    watch = _watch(("True", 1), ("False", 5), ("True", 6))
    assert watch.transitions == 2
    assert watch.regressions == 0


def test_a_last_transition_time_that_goes_back_is_a_regression() -> None:
    # E.g. an operator restarted with a stale copy of the status writing an older time back.
    watch = _watch(("True", 5), ("False", 6), ("True", 3))
    assert watch.regressions == 1


def test_a_topic_or_secret_with_a_new_identity_or_gone_counts_as_recreated() -> None:
    before = Identities(
        topic_ids={"retail.a": "id-1", "retail.b": "id-2"},
        secret_uids={"retail-pan-keys": "uid-1", "retail-db": "uid-2"},
    )
    same = Identities(dict(before.topic_ids), {**before.secret_uids, "new-secret": "uid-9"})
    assert before.recreated(same) == ([], [])
    changed = Identities({"retail.a": "id-1", "retail.b": "id-7"}, {"retail-db": "uid-2"})
    assert before.recreated(changed) == (["retail.b"], ["retail-pan-keys"])


def test_the_chaos_pipeline_is_the_sample_with_four_partitions_and_the_runs_consumers() -> None:
    sample = load_sample("127.0.0.1:9092")
    chaos = chaos_pipeline("127.0.0.1:9092")
    assert chaos.body["spec"]["kafka"]["partitions"] == 4
    assert [c["name"] for c in chaos.consumers] == ["credit-service", "decision-service"]
    assert chaos.key_secret == sample.key_secret
    assert sample.body["spec"]["kafka"]["partitions"] == 3, "the sample itself is untouched"
