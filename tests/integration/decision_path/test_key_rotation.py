"""A key id credit-service does not know yet is an outage of that process, never poison: it
reads its keys again from their source and the record waits until the key arrives."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry

from credit_service.handler import CreditHandler, CreditMetrics, Keys, decrypt_only
from prequal import dlq, events, sealing
from prequal.kafka import read_topic
from prequal.pan import Keyring
from tests.polling import wait_until

from .conftest import GROUP_CREDIT, World, insert_application, submitted_payload


def test_a_legacy_ciphertext_under_a_key_not_distributed_yet_waits_for_it_instead_of_dying(
    world: World,
) -> None:
    topics = world.topics
    old = {"v1": world.keyring.keys["v1"]}
    mounted = dict(old)  # what the mounted key Secret holds; the rotation adds to it later
    rotated = Keyring({**old, "v3": os.urandom(32)}, active_key_id="v3")
    app = insert_application(world.database_url, rotated)
    registry = CollectorRegistry()
    no_sealing_keys = sealing.Opener({})
    handler = CreditHandler(
        Keys(no_sealing_keys, decrypt_only(old)),
        topics.reports,
        CreditMetrics(registry),
        reload_keys=lambda: Keys(no_sealing_keys, decrypt_only(mounted)),
    )
    credit = world.consumers.start(topics.submitted, GROUP_CREDIT, handler, registry=registry)
    # An API pod restarted after the rotation wrote it with the new active key.
    world.producer.event(
        topics.submitted,
        events.APPLICATION_SUBMITTED,
        submitted_payload(app, rotated),
        key=str(app.id),
    )
    labels = {"topic": topics.submitted, "group": GROUP_CREDIT}
    wait_until(
        lambda: (
            credit.sample("dlq_records_total", topic=dlq.dlq_topic(topics.submitted)) > 0
            or credit.sample("consumer_records_total", **labels, outcome="retried") >= 3
        )
    )
    assert credit.sample("dlq_records_total", topic=dlq.dlq_topic(topics.submitted)) == 0
    mounted["v3"] = rotated.keys["v3"]  # the kubelet brings the new Secret to the pod
    wait_until(lambda: credit.sample("credit_reports_total") == 1)
    assert read_topic(world.kafka, dlq.dlq_topic(topics.submitted)) == []
