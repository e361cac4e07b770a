"""The platform the chaos run hits: PostgreSQL (durable), Kafka, Hydra, and two instances of each
of the API, the outbox publisher, credit-service and decision-service, every one under the
Supervisor that `make run` uses (CrashLoopBackOff restarts, printed and counted).

Everything listens on free loopback ports and lives under a private run directory, so a chaos
run never meets a `make run` platform on the same machine. The operator and the Kubernetes
control plane are not started: the topics are created with the admin client and the keys
generated, as the end-to-end tests do (docs/chaos.md says why).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.hydra import Hydra, fetch_token
from devstack.kafka import Kafka
from devstack.net import LOOPBACK, free_port
from devstack.postgres import Postgres
from devstack.services import (
    API,
    CREDIT,
    DECISION,
    PUBLISHER,
    RunningService,
    Services,
    ServiceSpec,
    migrate,
)
from devstack.supervisor import Launch, Supervised, Supervisor
from prequal.dlq import dlq_topic
from prequal.kafka import create_topics
from prequalctl.keys import generate_keys

SUBMITTED = "loan_applications_submitted"
REPORTS = "credit_reports_generated"
# Each decision's event goes here through the outbox; no dispatcher reads it in the chaos run,
# but without the topic the publisher could never empty the outbox.
DECIDED = "loan_applications_decided"
TOPICS = (SUBMITTED, REPORTS, DECIDED)
GROUPS = {SUBMITTED: "credit-service", REPORTS: "decision-service"}
# Four partitions: the rebalance storm's four credit-service instances each get one.
PARTITIONS = 4
DATABASE = "prequal"
INSTANCES = (1, 2)
START_TIMEOUT = 60.0

Say = Callable[[str], None]


@dataclass
class ChaosPlatform:
    run_dir: Path
    say: Say
    supervisor: Supervisor = field(init=False)
    postgres: Postgres | None = None
    kafka: Kafka | None = None
    hydra: Hydra | None = None
    services: Services | None = None
    token: str = ""
    api_ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(say=self.say)

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def database_url(self) -> str:
        assert self.postgres
        return self.postgres.url

    @property
    def bootstrap(self) -> str:
        assert self.kafka
        return self.kafka.bootstrap

    @property
    def api_urls(self) -> list[str]:
        return [f"http://{LOOPBACK}:{port}" for port in self.api_ports]

    def start(self) -> None:
        self.say("starting PostgreSQL (durable), Hydra and Kafka on free loopback ports")
        self.postgres = Postgres(
            self.run_dir / "postgres" / "data", database=DATABASE, durable=True
        ).start()
        # Generous bounds: on a busy 2-core machine Hydra's first key pair alone takes a minute.
        self.hydra = Hydra(self.run_dir / "hydra", self.postgres).start(timeout=180)
        self.token = fetch_token(self.hydra.token_url, self.hydra.register_client("chaos"))
        self.kafka = Kafka(self.run_dir / "kafka" / "data", log_level="WARN").start(timeout=180)
        create_topics(
            self.kafka.bootstrap,
            {
                **dict.fromkeys(TOPICS, PARTITIONS),
                **{dlq_topic(topic): 1 for topic in TOPICS},
            },
        )
        env = {
            "DATABASE_URL": self.postgres.url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap,
            "SECRETS_DIR": "/nonexistent",
            "LOG_LEVEL": "INFO",  # every line a process writes is searched for PANs
            "OIDC_ISSUER": self.hydra.issuer,
            "OIDC_JWKS_URL": self.hydra.jwks_url,
            "RATE_LIMIT_POST_PER_SECOND": "0",  # one client is the whole load
            "API_HOST": LOOPBACK,
            **generate_keys("v1"),
        }
        migrate(env, self.log_dir)
        self.services = Services(env, self.log_dir)
        self.api_ports = [free_port() for _ in INSTANCES]
        # All eight side by side (a restart later waits for its one), then under supervision.
        launched = []
        for spec in (API, PUBLISHER, CREDIT, DECISION):
            for instance in INSTANCES:
                port = self.api_ports[instance - 1] if spec is API else None
                service = self.services.launch(spec, port=port, instance=instance)
                launched.append((service, self._starter(spec, instance, port)))
        self.say("started 2 x prequal-api, outbox-publisher, credit-service, decision-service")
        for service, starter in launched:
            running = self.services.as_launch(service, timeout=120).wait()
            self.supervisor.keep(service.process.name, starter, running)

    def _starter(self, spec: ServiceSpec, instance: int, port: int | None) -> Callable[[], Launch]:
        def launch() -> Launch:
            assert self.services
            service = self.services.launch(spec, port=port, instance=instance)
            return self.services.as_launch(service, timeout=START_TIMEOUT)

        return launch

    def supervised(self, name: str) -> Supervised:
        for item in self.supervisor.supervised:
            if item.loop.name == name:
                return item
        raise KeyError(name)

    def start_extra(self, spec: ServiceSpec, instance: int) -> RunningService:
        """An unsupervised instance (the rebalance storm's), stopped with `stop_extra`."""
        assert self.services
        return self.services.start(spec, instance=instance, timeout=START_TIMEOUT)

    def stop_extra(self, service: RunningService) -> None:
        assert self.services
        self.services.stop(service)

    def stop(self) -> None:
        if self.services:
            for service in self.services.running:  # all asked at once, then waited for
                service.process.signal(signal.SIGTERM)
            self.services.stop_all()
        for component in (self.kafka, self.hydra, self.postgres):
            if component is not None:
                component.stop()
