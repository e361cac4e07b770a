"""A publisher worker woken sooner than OUTBOX_GATHER_SECONDS after its last batch began waits
out the rest before it claims; woken later, or idle, it claims at once.

`_idle` alone, with the clock and the stop event's waits replaced: no timing is measured.
"""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry

from outbox_publisher import publisher as publisher_module
from outbox_publisher.metrics import PublisherMetrics
from outbox_publisher.publisher import Publisher
from outbox_publisher.settings import PublisherSettings

NOW = 1000.0


class _RecordingStop(threading.Event):
    """The stop event: records the waits asked of it instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        return False


def _publisher(gather: float, monkeypatch: pytest.MonkeyPatch) -> tuple[Publisher, _RecordingStop]:
    settings = PublisherSettings(
        database_url="postgresql://unused@127.0.0.1:9/unused",  # type: ignore[arg-type]
        kafka_bootstrap_servers="127.0.0.1:9",
        outbox_workers=1,
        outbox_gather_seconds=gather,
    )
    publisher = Publisher(
        settings,
        connect=lambda: None,  # type: ignore[arg-type,return-value]
        producers=lambda _index: None,  # type: ignore[arg-type,return-value]
        metrics=PublisherMetrics(CollectorRegistry()),
    )
    stop = _RecordingStop()
    publisher.stopping = stop
    monkeypatch.setattr(publisher_module.time, "monotonic", lambda: NOW)
    return publisher, stop


def test_a_wake_soon_after_a_batch_waits_out_the_gather_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publisher, stop = _publisher(0.02, monkeypatch)
    publisher._wake[0].set()  # a NOTIFY already arrived
    publisher._idle(0, full=False, began=NOW - 0.005)
    assert stop.waits == [pytest.approx(0.015)]
    assert not publisher._wake[0].is_set()  # cleared just before the claim, after the wait


def test_a_wake_after_the_interval_claims_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    publisher, stop = _publisher(0.02, monkeypatch)
    publisher._wake[0].set()
    publisher._idle(0, full=False, began=NOW - 0.5)  # an idle publisher's first event
    assert stop.waits == []
    assert not publisher._wake[0].is_set()


def test_a_full_batch_is_followed_by_the_next_without_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publisher, stop = _publisher(0.02, monkeypatch)
    publisher._idle(0, full=True, began=NOW)
    assert stop.waits == []


def test_zero_turns_the_gathering_off(monkeypatch: pytest.MonkeyPatch) -> None:
    publisher, stop = _publisher(0.0, monkeypatch)
    publisher._wake[0].set()
    publisher._idle(0, full=False, began=NOW)
    assert stop.waits == []
