"""The whole platform as processes: the API, the outbox publisher, credit-service and
decision-service started from their console scripts (devstack.services) against the session's
PostgreSQL and Kafka. No operator runs here, so the topics are created with the admin client.
Keys are generated for the run."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.kafka import Kafka
from devstack.postgres import Postgres
from devstack.services import (
    API,
    CREDIT,
    DECISION,
    DISPATCHER,
    PUBLISHER,
    RunningService,
    Services,
    migrate,
)
from prequal.dlq import dlq_topic
from prequal.kafka import create_topics
from prequal.kafka_acl import PipelineTopics, pipeline_grants
from prequal.kafka_security import KafkaConnection
from prequalctl.keys import generate_keys
from tests.applications import application
from tests.polling import wait_until
from tests.tokens import Oidc

FINAL = {"PRE_APPROVED", "REJECTED", "MANUAL_REVIEW"}


def metric(service: RunningService, name: str, **labels: str) -> float:
    """One sample from a service's /metrics (0 when absent)."""
    text = httpx.get(f"http://{service.metrics_address}/metrics", timeout=5).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}(\{{(?P<labels>[^}}]*)\}})? (?P<value>\S+)$", re.M)
    total = 0.0
    for match in pattern.finditer(text):
        got = ",".join(sorted((match.group("labels") or "").split(",")))
        if not labels or got == ",".join(sorted(wanted.split(","))):
            total += float(match.group("value"))
    return total


@dataclass
class Platform:
    services: Services
    env: dict[str, str]
    database_url: str
    kafka: KafkaConnection  # the broker's super user, for the tests' own reads and writes
    log_dir: Path
    token: str = ""
    other_token: str = ""
    by_name: dict[str, RunningService] = field(default_factory=dict)
    pans: list[str] = field(default_factory=list)

    @property
    def api(self) -> RunningService:
        return self.by_name[API.name]

    def client(self, token: str | None = None) -> httpx.Client:
        """An API client with a bearer token (default: the session's first OAuth2 client's)."""
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.api.url, timeout=10, headers=headers)

    def submit(self, http: httpx.Client, **overrides: object) -> httpx.Response:
        body = application(**overrides)
        self.pans.append(str(body["pan_number"]))
        return http.post("/applications", json=body)

    def final_status(self, http: httpx.Client, application_id: str, timeout: float = 60) -> Any:
        def done() -> Any:
            body = http.get(f"/applications/{application_id}/status").json()
            return body if body["status"] in FINAL else None

        return wait_until(done, timeout)

    def restart(self, name: str, *, kill: bool) -> RunningService:
        running = self.by_name[name]
        if kill:
            running.process.kill()
            self.services.running.remove(running)
        else:
            self.services.stop(running)
        fresh = self.services.start(running.spec, instance=int(time.time()) % 1000 + 1)
        self.by_name[name] = fresh
        return fresh


@pytest.fixture(scope="module")
def platform(
    postgres: Postgres, kafka: Kafka, oidc: Oidc, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    run = uuid.uuid4().hex[:8]
    database_url = postgres.create_database(f"e2e_{run}")
    submitted, reports = f"e2e-{run}-loan_applications_submitted", f"e2e-{run}-credit_reports"
    decided = f"e2e-{run}-loan_applications_decided"
    create_topics(
        kafka.connection(),
        {
            **dict.fromkeys((submitted, reports, decided), 3),
            **{dlq_topic(topic): 1 for topic in (submitted, reports, decided)},
        },
    )
    env = {
        "DATABASE_URL": database_url,
        # Each service connects as its own principal (Services' kafka_identities).
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "TOPIC_APPLICATIONS_SUBMITTED": submitted,
        "TOPIC_CREDIT_REPORTS": reports,
        "TOPIC_APPLICATIONS_DECIDED": decided,
        "SECRETS_DIR": "/nonexistent",
        "LOG_LEVEL": "INFO",
        **generate_keys("v1"),
        **oidc.api_env(),
        # The demo's and the tests' webhook receivers listen on loopback, as in `make run`.
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
        # One client drives every scenario here, 150 POSTs at once among them.
        "RATE_LIMIT_POST_BURST": "1000",
    }
    log_dir = tmp_path_factory.mktemp("e2e-logs")
    migrate(env, log_dir)
    # Each service may do on these topics exactly what the design lets it: no more.
    kafka.grant(pipeline_grants(PipelineTopics(submitted, reports, decided)))
    services = Services(env, log_dir, kafka.identities())
    platform = Platform(
        services,
        env,
        database_url,
        kafka.connection(),
        log_dir,
        oidc.token(),
        oidc.token(oidc.other),
    )
    try:
        for spec in (API, PUBLISHER, CREDIT, DECISION, DISPATCHER):
            platform.by_name[spec.name] = services.start(spec)
        yield platform
    finally:
        services.stop_all()
