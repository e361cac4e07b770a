"""The per-endpoint concurrency limit holds across dispatcher replicas (migration 0015).

Real `webhook-dispatcher` processes from their console script, each as its own database role
and Kafka principal (devstack.services, as `make run` starts them), against real PostgreSQL,
Kafka and an HTTP receiver on loopback that holds requests open. Deliveries are parked by hand,
as the parking consumer would have parked them, so every process is due to send at once."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from devstack.kafka import Kafka
from devstack.postgres import Postgres
from devstack.services import DISPATCHER, RunningService, Services
from prequal import sealing, webhooks
from prequal.db import roles
from prequal.dlq import dlq_topic
from prequal.kafka import create_topics
from prequal.kafka_acl import PipelineTopics, pipeline_grants
from prequal.webhook_secrets import seal_secret
from prequalctl.keys import generate_keys
from tests.integration.tcp_proxy import TcpProxy
from tests.polling import wait_until
from webhook_dispatcher.delivery import Deliverer, DeliveryMetrics, DeliveryPolicy

from .dispatch_rig import LOOPBACK, OPENER, register, statuses
from .webhook_receiver import HANG, SLOW, Receiver, serve_receiver

LIMIT = 2


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return generate_keys("w1")


@pytest.fixture(scope="module")
def prefix(kafka: Kafka, database_url: str) -> str:
    """Topics of this module's own (the dispatcher consumes, finds nothing: the deliveries are
    parked by hand), the dispatcher's grants, and the database roles."""
    prefix = f"lim{uuid.uuid4().hex[:6]}."
    topics = PipelineTopics.prefixed(prefix)
    create_topics(kafka.connection(), {topics.decided: 1, dlq_topic(topics.decided): 1})
    kafka.grant(pipeline_grants(topics))
    with psycopg.connect(database_url, autocommit=True) as conn:
        roles.ensure_roles(conn)
    return prefix


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver()


@pytest.fixture
def services(
    tmp_path: Path, kafka: Kafka, database_url: str, keys: dict[str, str], prefix: str
) -> Iterator[Services]:
    env = {
        "SECRETS_DIR": "/nonexistent",
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "TOPIC_APPLICATIONS_DECIDED": PipelineTopics.prefixed(prefix).decided,
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "WEBHOOK_ENDPOINT_CONCURRENCY": str(LIMIT),
        "WEBHOOK_WORKERS": "4",
        "WEBHOOK_POLL_INTERVAL_SECONDS": "0.1",
        "WEBHOOK_BACKOFF_INITIAL_SECONDS": "0.2",
        "WEBHOOK_BACKOFF_MAX_SECONDS": "1",
        "LOG_LEVEL": "INFO",
        **keys,
    }
    running = Services(env, tmp_path / "logs", kafka.identities())
    try:
        yield running
    finally:
        running.stop_all()


def start(services: Services, count: int, **settings: str) -> list[RunningService]:
    launched = [services.launch(DISPATCHER, instance=i, extra_env=settings) for i in range(count)]
    for service in launched:
        services.wait_ready(service)
    return launched


def endpoint(database_url: str, keys: dict[str, str], receiver: Receiver, name: str) -> uuid.UUID:
    """Registered as the API registers: the secret sealed to the dispatcher's public key."""
    sealer = sealing.Sealer(sealing.parse_key_list(keys["WEBHOOK_SEALING_PUBLIC_KEYS"], "x"), "w1")
    secret, endpoint_id = webhooks.new_secret(), uuid.uuid4()
    url = receiver.endpoint(name, secret, [])
    with psycopg.connect(database_url) as conn:
        conn.execute(
            webhooks.INSERT_ENDPOINT_SQL,
            (endpoint_id, f"client-{name}", url, seal_secret(sealer, secret, endpoint_id)),
        )
    return endpoint_id


def park(database_url: str, endpoint_id: uuid.UUID, count: int) -> None:
    """`count` due deliveries, as ParkingHandler inserts them for decided events."""
    with psycopg.connect(database_url) as conn:
        for _ in range(count):
            conn.execute(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, application_id, "
                'payload) VALUES (%s, %s, %s, %s, \'{"type": "test"}\')',
                (uuid.uuid4(), endpoint_id, uuid.uuid4(), uuid.uuid4()),
            )


def leases(database_url: str, endpoint_id: uuid.UUID) -> list[datetime]:
    """When the attempts in flight at the endpoint lose their leases (slot and row alike)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT next_attempt_at FROM webhook_deliveries WHERE endpoint_id = %s "
            "AND attempts > 0",
            (endpoint_id,),
        ).fetchall()
    return [row[0] for row in rows]


def test_three_dispatchers_never_exceed_an_endpoints_limit_and_other_endpoints_proceed(
    services: Services, receiver: Receiver, database_url: str, keys: dict[str, str]
) -> None:
    receiver.slow_seconds = 0.5
    slow = endpoint(database_url, keys, receiver, "slow")
    quick = endpoint(database_url, keys, receiver, "quick")
    receiver.scripts["slow"] = [SLOW] * 100
    start(services, 3)

    park(database_url, slow, 16)
    park(database_url, quick, 6)

    # The quick endpoint is served while the slow one still has deliveries parked.
    wait_until(
        lambda: statuses(database_url, quick) == ["DELIVERED"] * 6,
        timeout=30,
        what="the quick endpoint's deliveries",
    )
    assert "PENDING" in statuses(database_url, slow)
    wait_until(
        lambda: statuses(database_url, slow) == ["DELIVERED"] * 16,
        timeout=60,
        what="the slow endpoint's deliveries",
    )
    # Three replicas, each with four idle workers and sixteen due deliveries, held the slow
    # endpoint to its limit together (per process it would have been up to 3 x 2).
    assert receiver.peak["slow"] == LIMIT, receiver.peak
    assert len(receiver.of("slow")) == 16
    assert all(r.verified for r in receiver.of("slow") + receiver.of("quick"))


def test_a_killed_dispatchers_slots_come_back_after_the_lease_and_not_before(
    services: Services, receiver: Receiver, database_url: str, keys: dict[str, str]
) -> None:
    # Timeout 4 s + margin 8 s: an attempt's lease is 12 s, renewed only after 6 s.
    lease = {"WEBHOOK_TIMEOUT_SECONDS": "4", "WEBHOOK_LEASE_MARGIN_SECONDS": "8"}
    stuck = endpoint(database_url, keys, receiver, "stuck")
    other = endpoint(database_url, keys, receiver, "other")
    receiver.scripts["stuck"] = [HANG] * 100
    [first] = start(services, 1, **lease)
    park(database_url, stuck, 4)
    wait_until(lambda: len(receiver.of("stuck")) == LIMIT, timeout=20, what="both slots taken")
    first.process.kill()  # SIGKILL mid-attempt: nothing gives the slots back
    expiries = leases(database_url, stuck)
    assert len(expiries) == LIMIT
    freed_at = min(expiries).timestamp()

    start(services, 1, **lease)
    park(database_url, other, 1)
    wait_until(
        lambda: statuses(database_url, other) == ["DELIVERED"],
        timeout=20,
        what="another endpoint's delivery while the dead process's slots are held",
    )
    while time.time() < freed_at - 0.5:
        assert len(receiver.of("stuck")) == LIMIT, "a slot was taken before its lease ended"
        time.sleep(0.1)
    wait_until(
        lambda: len(receiver.of("stuck")) > LIMIT,
        timeout=30,
        what="the stuck endpoint's slots to come back after the lease",
    )
    assert receiver.of("stuck")[LIMIT].wall >= freed_at - 0.05


class Trickling(BaseHTTPRequestHandler):
    """Answers 204 one header line every 0.5 s for `seconds`: each read is within the timeout,
    the whole attempt is not. Counts the requests open at once."""

    seconds = 7.0
    lock = threading.Lock()
    open = 0
    peak = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        cls = type(self)
        with cls.lock:
            cls.open += 1
            cls.peak = max(cls.peak, cls.open)
        try:
            self.send_response_only(204)
            for line in range(int(self.seconds / 0.5)):
                self.send_header("x-pad", str(line))
                self.flush_headers()
                time.sleep(0.5)
            self.send_header("content-length", "0")
            self.end_headers()
        except OSError:
            pass  # the dispatcher gave up
        finally:
            with cls.lock:
                cls.open -= 1

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_an_attempt_longer_than_its_lease_renews_it_and_keeps_its_slot(database_url: str) -> None:
    """Lease 3 s (timeout 2 s + margin 1 s), an answer that takes 7 s: without renewal a second
    deliverer would find the row due and the slot expired, and send the delivery again."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    endpoint_id = register(
        database_url, "client-trickle", f"http://{host!s}:{port}/hooks/t", webhooks.new_secret()
    )
    policy = DeliveryPolicy(
        timeout=2.0,
        lease_margin=1.0,
        max_attempts=3,
        workers=2,
        endpoint_concurrency=1,
        poll_interval=0.1,
        allowed_networks=LOOPBACK,
    )
    deliverers = [
        Deliverer(
            lambda: psycopg.connect(database_url, autocommit=True),
            policy,
            DeliveryMetrics(CollectorRegistry()),
            OPENER,
        )
        for _ in range(2)
    ]
    threads = [threading.Thread(target=d.run, daemon=True) for d in deliverers]
    for thread in threads:
        thread.start()
    try:
        park(database_url, endpoint_id, 1)
        wait_until(
            lambda: statuses(database_url, endpoint_id) == ["DELIVERED"],
            timeout=30,
            what="the trickled delivery",
        )
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT attempts FROM webhook_deliveries WHERE endpoint_id = %s", (endpoint_id,)
            ).fetchone()
        assert row == (1,), "the delivery was attempted again while its first attempt ran"
        assert Trickling.peak == 1
    finally:
        for deliverer in deliverers:
            deliverer.stop()
        for thread in threads:
            thread.join(10)
        server.shutdown()
        server.server_close()


def test_with_postgresql_unreachable_an_unrecorded_attempt_keeps_its_slot_until_the_lease(
    postgres: Postgres, database_url: str, receiver: Receiver
) -> None:
    """The outage behaviour docs/webhooks.md states: an outcome that cannot be recorded leaves
    the row and its slot to their lease; both come back together, and the attempt is made
    again with the same webhook-id. The fault: the dispatcher's connection to PostgreSQL is cut
    while the receiver holds its request, so the outcome's statement is the one that fails."""
    proxies = [TcpProxy(postgres.port)]
    proxied = database_url.replace(f":{postgres.port}/", "PORT")

    def connect() -> psycopg.Connection[Any]:
        port = proxies[-1].port
        # A bounded connect, as the dispatcher's own (main.py): a closed proxy may still queue
        # connections it never accepts.
        url = proxied.replace("PORT", f":{port}/")
        return psycopg.connect(url, autocommit=True, connect_timeout=2)

    secret = webhooks.new_secret()
    url = receiver.endpoint("cut", secret, [HANG])
    endpoint_id = register(database_url, "client-cut", url, secret)
    policy = DeliveryPolicy(
        timeout=5.0,
        lease_margin=2.0,
        max_attempts=3,
        workers=2,
        endpoint_concurrency=1,
        poll_interval=0.1,
        allowed_networks=LOOPBACK,
    )
    deliverer = Deliverer(connect, policy, DeliveryMetrics(CollectorRegistry()), OPENER)
    thread = threading.Thread(target=deliverer.run, daemon=True)
    thread.start()
    try:
        park(database_url, endpoint_id, 1)
        wait_until(lambda: receiver.of("cut"), timeout=20, what="the first attempt")
        [lease_end] = leases(database_url, endpoint_id)
        proxies[-1].close()  # PostgreSQL unreachable: its socket reset, no new connection
        receiver.release.set()  # the receiver answers 204; the outcome cannot be recorded
        wait_until(lambda: receiver.open["cut"] == 0, timeout=10, what="the answer")
        time.sleep(0.5)
        proxies.append(TcpProxy(postgres.port))  # back

        wait_until(
            lambda: statuses(database_url, endpoint_id) == ["DELIVERED"],
            timeout=30,
            what="the attempt made again after its lease",
        )
        first, second = receiver.of("cut")
        assert second.wall >= lease_end.timestamp() - 0.05, "sent again before the lease ended"
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT d.attempts, count(s.*) FILTER (WHERE s.expires_at > now()) "
                "FROM webhook_deliveries d LEFT JOIN webhook_endpoint_slots s "
                "ON s.endpoint_id = d.endpoint_id WHERE d.endpoint_id = %s GROUP BY d.attempts",
                (endpoint_id,),
            ).fetchone()
        assert row == (2, 0)  # attempted twice; no slot left held
        assert thread.is_alive()
    finally:
        deliverer.stop()
        thread.join(10)
        for proxy in proxies:
            proxy.close()
