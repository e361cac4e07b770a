"""CloudEvents binary-mode headers, payload models, outbox lanes, breaker and lane shares."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from outbox_publisher.breaker import CircuitBreaker
from outbox_publisher.lanes import fair_share
from prequal import events, outbox
from prequal.db.tables import OUTBOX_LANES


def test_binary_headers_round_trip_through_the_parser() -> None:
    event_id = uuid.uuid4()
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    headers = events.binary_headers(event_id, events.APPLICATION_SUBMITTED, moment)
    assert dict(headers)["content-type"] == b"application/json"
    assert dict(headers)["ce_time"] == b"2026-01-01T21:34:05Z"
    attrs = events.parse_headers(headers)
    assert attrs.id == event_id
    assert attrs.type == "loan.application.submitted.v1"
    assert attrs.source == "/prequal/api"


@pytest.mark.parametrize("drop", ["ce_id", "ce_type", "ce_specversion"])
def test_a_record_missing_a_cloudevents_header_is_invalid(drop: str) -> None:
    headers = events.binary_headers(uuid.uuid4(), events.APPLICATION_SUBMITTED, datetime.now(UTC))
    with pytest.raises(events.InvalidEnvelopeError, match=drop):
        events.parse_headers([h for h in headers if h[0] != drop])


def test_payloads_parse_by_type_and_unknown_types_or_bad_json_are_invalid() -> None:
    payload = events.ApplicationSubmitted(
        application_id=uuid.uuid4(),
        pan_encrypted="AQJ2MQ==",
        monthly_income=85000,
        requested_amount=500000,
        loan_type="HOME",
        submitted_at=datetime.now(UTC),
    )
    parsed = events.parse_payload(events.APPLICATION_SUBMITTED, payload.model_dump_json().encode())
    assert parsed == payload
    with pytest.raises(events.InvalidEnvelopeError, match="unknown event type"):
        events.parse_payload("nope.v1", b"{}")
    with pytest.raises(events.InvalidEnvelopeError, match="invalid"):
        events.parse_payload(events.APPLICATION_SUBMITTED, b"{not json")


def test_every_event_of_an_application_goes_to_one_lane() -> None:
    app = uuid.uuid4()
    rows = [outbox.OutboxRow.new("t", "e", app, "{}") for _ in range(5)]
    assert {r.params()[2] for r in rows} == {outbox.lane_for(app)}
    assert all(0 <= outbox.lane_for(uuid.uuid4()) < OUTBOX_LANES for _ in range(100))


def test_breaker_backs_off_exponentially_up_to_its_cap_and_closes_on_success() -> None:
    breaker = CircuitBreaker(base_delay=0.5, max_delay=4.0)
    assert breaker.allows(0.0)
    delays = [breaker.record_failure(100.0) for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert not breaker.allows(103.9)
    assert breaker.allows(104.0)
    breaker.record_success()
    assert not breaker.is_open
    assert breaker.allows(0.0)


@pytest.mark.parametrize(
    ("members", "share"), [(0, 64), (1, 64), (2, 32), (3, 22), (64, 1), (100, 1)]
)
def test_lanes_are_shared_equally_among_publishers(members: int, share: int) -> None:
    assert fair_share(members) == share
