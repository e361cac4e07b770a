"""`prequalctl dlq`: list and show never print a PAN; replay of a fixed record completes its
application."""

from __future__ import annotations

import json

import psycopg
import pytest

from prequal import dlq, events
from prequal.pan import Keyring
from prequalctl.main import main as prequalctl
from tests.polling import wait_until

from .conftest import World, insert_application, submitted_payload


def test_list_show_and_replay_after_the_missing_key_is_configured(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SECRETS_DIR", "/nonexistent")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", world.bootstrap)
    monkeypatch.setenv("TOPIC_APPLICATIONS_SUBMITTED", world.topics.submitted)
    monkeypatch.setenv("TOPIC_CREDIT_REPORTS", world.topics.reports)
    app = insert_application(world.database_url, world.keyring)
    # The service was deployed with only the old key: the new key's ciphertext cannot be read.
    old_ring = Keyring({"v1": world.keyring.keys["v1"]}, active_key_id="v1")
    stale = world.consumers.credit(world.topics, old_ring)
    world.producer.event(
        world.topics.submitted,
        events.APPLICATION_SUBMITTED,
        submitted_payload(app, world.keyring),
        key=str(app.id),
    )
    dead_topic = dlq.dlq_topic(world.topics.submitted)
    wait_until(lambda: stale.sample("dlq_records_total", topic=dead_topic) == 1)
    stale.stop()

    assert prequalctl(["dlq", "list"]) == 0
    listing = capsys.readouterr().out
    assert str(app.id) in listing
    assert "PoisonRecordError" in listing
    assert "key id 'v2'" in listing
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

    # Fixed: the service now holds the whole keyring. Replay, and the application is scored.
    world.consumers.credit(world.topics, world.keyring)
    assert prequalctl(["dlq", "replay", "--topic", dead_topic, "--offset", "0", "--dry-run"]) == 0
    assert f"to {world.topics.submitted}" in capsys.readouterr().out
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
    assert prequalctl(["dlq", "replay", "--topic", dead_topic, "--offset", "7"]) == 1
