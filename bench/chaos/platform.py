"""The platform the chaos run hits: PostgreSQL (durable), Kafka, Hydra, the Kubernetes control
plane `make run` uses (etcd, kube-apiserver, kube-controller-manager) with the operator
reconciling a LoanPipeline, and two instances of each of the API, the outbox publisher,
credit-service and decision-service. The operator and the eight service processes are kept by
the Supervisor that `make run` uses (CrashLoopBackOff restarts, printed and counted).

As in `make run`, the operator provisions the topics, their DLQs and the key Secrets, and the
services are configured from the ConfigMap and key Secret it wrote (devstack.pipeline). Every
component listens on free loopback ports and lives under a private run directory, so a chaos
run never meets a `make run` platform on the same machine.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.chaos.pipeline import chaos_pipeline
from kubernetes import client, config

from devstack import pipeline as devstack_pipeline
from devstack.hydra import Hydra, fetch_token
from devstack.kafka import Kafka
from devstack.kube import ControlPlane
from devstack.net import LOOPBACK, free_port
from devstack.operator import NAME as OPERATOR
from devstack.operator import launch_operator
from devstack.pipeline import LocalPipeline
from devstack.postgres import Postgres
from devstack.process import ManagedProcess
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
from prequal.kafka_security import KafkaConnection

SUBMITTED = "loan_applications_submitted"
REPORTS = "credit_reports_generated"
# Their ConfigMap keys: the operator writes the (prefixed) names there.
TOPIC_KEYS = {SUBMITTED: "TOPIC_APPLICATIONS_SUBMITTED", REPORTS: "TOPIC_CREDIT_REPORTS"}
GROUPS = {SUBMITTED: "credit-service", REPORTS: "decision-service"}
DATABASE = "prequal"
INSTANCES = (1, 2)
START_TIMEOUT = 60.0
# The operator re-reconciles topics and Secrets this often (60 s by default), so it passes
# through its whole reconcile, faults included, several times during a run.
OPERATOR_RESYNC_S = "10"

Say = Callable[[str], None]


@dataclass
class ChaosPlatform:
    run_dir: Path
    say: Say
    supervisor: Supervisor = field(init=False)
    postgres: Postgres | None = None
    kafka: Kafka | None = None
    hydra: Hydra | None = None
    control_plane: ControlPlane | None = None
    api_client: client.ApiClient | None = None
    pipeline: LocalPipeline | None = None
    operator: ManagedProcess | None = None
    services: Services | None = None
    token: str = ""
    api_ports: list[int] = field(default_factory=list)
    # Logical topic name -> the name the operator gave it (from its ConfigMap).
    topics: dict[str, str] = field(default_factory=dict)

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
    def connection(self) -> KafkaConnection:
        """The broker's super user, for the checks' reads."""
        assert self.kafka
        return self.kafka.connection()

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
        env = self._start_pipeline()
        env |= {
            "DATABASE_URL": self.postgres.url,
            "SECRETS_DIR": "/nonexistent",
            "LOG_LEVEL": "INFO",  # every line a process writes is searched for PANs
            "OIDC_ISSUER": self.hydra.issuer,
            "OIDC_JWKS_URL": self.hydra.jwks_url,
            "RATE_LIMIT_POST_PER_SECOND": "0",  # one client is the whole load
            "API_HOST": LOOPBACK,
        }
        self.topics = {logical: env[key] for logical, key in TOPIC_KEYS.items()}
        migrate(env, self.log_dir)
        self.kafka.grant(devstack_pipeline.service_grants(self.pipeline, env))
        self.services = Services(env, self.log_dir, self.kafka.identities())
        self.api_ports = [free_port() for _ in INSTANCES]
        # All eight side by side, then under supervision (which restarts them the same way).
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

    def _start_pipeline(self) -> dict[str, str]:
        """`make run`'s path: CRD, namespace, database Secret and Deployments, the operator
        (supervised), the LoanPipeline, Ready; returns the services' environment from the
        ConfigMap and key Secret the operator wrote."""
        assert self.postgres
        assert self.kafka
        self.say("starting the Kubernetes control plane, then loan-operator; applying the pipeline")
        self.control_plane = ControlPlane(self.run_dir / "kube").start(timeout=180)
        self.api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            str(self.control_plane.kubeconfig)
        )
        self.pipeline = chaos_pipeline(self.kafka.bootstrap)
        devstack_pipeline.apply_prerequisites(self.api_client, self.pipeline, self.postgres.url)
        first = self._launch_operator()
        first = replace(first, timeout=180).wait()
        self.supervisor.keep(OPERATOR, self._launch_operator, first)
        devstack_pipeline.apply_pipeline(self.api_client, self.pipeline)
        devstack_pipeline.wait_ready(self.api_client, self.pipeline, timeout=180)
        return devstack_pipeline.service_environment(self.api_client, self.pipeline)

    def _launch_operator(self) -> Launch:
        assert self.control_plane
        launch = launch_operator(
            self.control_plane.kubeconfig,
            self.log_dir,
            free_port(),
            extra_env={
                "OPERATOR_RESYNC_SECONDS": OPERATOR_RESYNC_S,
                "LOG_LEVEL": "INFO",
                **self.connection.environment(),
            },
            timeout=START_TIMEOUT,
        )
        assert isinstance(launch.process, ManagedProcess)
        self.operator = launch.process
        return launch

    def topic(self, logical: str) -> str:
        return self.topics[logical]

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
        if self.operator:
            self.operator.stop()
        for component in (self.control_plane, self.kafka, self.hydra, self.postgres):
            if component is not None:
                component.stop()
        if self.api_client:
            self.api_client.close()  # type: ignore[no-untyped-call]
