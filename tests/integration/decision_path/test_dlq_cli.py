"""`prequalctl dlq`: list and show never print a PAN; a dry run sends nothing; replay of a fixed
record completes its application, decision included."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest

from outbox_publisher.main import build
from outbox_publisher.publisher import Publisher
from outbox_publisher.settings import PublisherSettings
from prequal import dlq, events
from prequal.kafka import read_topic
from prequal.kafka_security import KafkaConnection
from prequalctl.main import main as prequalctl
from tests.kafka_reader import settings_of
from tests.polling import wait_until

from .conftest import World, application_status, insert_application, submitted_payload


def _audit_writes_refused(database_url: str, refused: bool) -> None:
    """A fault the operator can fix: every audit row is refused (CheckViolation, the record's
    own failure), until the constraint is dropped."""
    with psycopg.connect(database_url) as conn:
        if refused:
            conn.execute(
                "ALTER TABLE audit_log ADD CONSTRAINT ck_test_refuse CHECK (false) NOT VALID"
            )
        else:
            conn.execute("ALTER TABLE audit_log DROP CONSTRAINT ck_test_refuse")


def _end_offsets(connection: KafkaConnection, topic: str) -> int:
    return len(read_topic(connection, topic))


def test_list_show_and_replay_after_the_cause_is_fixed(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SECRETS_DIR", "/nonexistent")
    for name, value in world.kafka.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TOPIC_APPLICATIONS_SUBMITTED", world.topics.submitted)
    monkeypatch.setenv("TOPIC_CREDIT_REPORTS", world.topics.reports)
    app = insert_application(world.database_url, world.keyring)
    _audit_writes_refused(world.database_url, refused=True)
    broken = world.consumers.credit(world.topics, world.keyring)
    world.producer.event(
        world.topics.submitted,
        events.APPLICATION_SUBMITTED,
        submitted_payload(app, world.keyring),
        key=str(app.id),
    )
    dead_topic = dlq.dlq_topic(world.topics.submitted)
    wait_until(lambda: broken.sample("dlq_records_total", topic=dead_topic) == 1)
    broken.stop()

    assert prequalctl(["dlq", "list"]) == 0
    listing = capsys.readouterr().out
    assert str(app.id) in listing
    assert "CheckViolation" in listing
    assert "ck_test_refuse" in listing
    assert app.pan not in listing

    assert prequalctl(["dlq", "list", "-o", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["dlq_topic"], r["offset"], r["key"]) for r in rows] == [(dead_topic, 0, str(app.id))]

    assert prequalctl(["dlq", "show", "--topic", world.topics.submitted, "--offset", "0"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["payload"]["pan_encrypted"].startswith("<hidden: ")
    assert shown["payload"]["application_id"] == str(app.id)
    assert shown["headers"][dlq.CONSUMER_GROUP] == "credit-service"
    assert app.pan not in json.dumps(shown)

    # Fixed: the constraint is gone. A dry run sends nothing; the replay completes the
    # application, through credit-service and decision-service.
    _audit_writes_refused(world.database_url, refused=False)
    world.consumers.credit(world.topics, world.keyring)
    world.consumers.decision(world.topics)
    publisher = _publisher(world)
    before = _end_offsets(world.kafka, world.topics.submitted)
    assert prequalctl(["dlq", "replay", "--topic", dead_topic, "--offset", "0", "--dry-run"]) == 0
    assert f"to {world.topics.submitted}" in capsys.readouterr().out
    assert _end_offsets(world.kafka, world.topics.submitted) == before, "a dry run sent"
    assert prequalctl(["dlq", "replay", "--topic", dead_topic, "--offset", "0"]) == 0
    assert "replayed 1 record(s)" in capsys.readouterr().out

    def reported() -> bool:
        with psycopg.connect(world.database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM outbox_events WHERE aggregate_id = %s AND event_type = %s",
                (app.id, events.CREDIT_REPORT_GENERATED),
            ).fetchone()
        return row == (1,)

    wait_until(reported)
    try:
        wait_until(lambda: application_status(world.database_url, app.id) != "PENDING", timeout=90)
    finally:
        publisher.stop()
    assert prequalctl(["dlq", "replay", "--topic", dead_topic, "--offset", "7"]) == 1


class _RunningPublisher:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.thread = threading.Thread(target=publisher.run, name="publisher", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.publisher.stop()
        self.thread.join(30)


def _publisher(world: World) -> _RunningPublisher:
    """The real outbox publisher, in-process: it carries the credit report to decision-service."""
    settings = PublisherSettings(
        database_url=world.database_url,  # type: ignore[arg-type]
        **settings_of(world.kafka),
        topic_applications_submitted=world.topics.submitted,
        topic_credit_reports=world.topics.reports,
        outbox_workers=1,
        outbox_delete_published=False,  # the report's row stays, marked, for the test to see
    )
    publisher, _registry = build(settings)
    return _RunningPublisher(publisher)
