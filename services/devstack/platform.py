"""The whole local platform in one object: what `make run` starts, in order.

Infrastructure first (PostgreSQL, Kafka, the Kubernetes control plane, Prometheus), then the
operator reconciling the sample LoanPipeline (topics, key Secret, ConfigMap), then the
migrations and the services configured from what the operator wrote. Components go down in
reverse. `.run/env` lists every endpoint as shell assignments for scripts and `make demo`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client, config

from devstack import pipeline
from devstack.hydra import AUDIENCE, SCOPES, Hydra, OAuthClient
from devstack.kafka import Kafka
from devstack.kube import ControlPlane
from devstack.kubelet import LocalKubelet, ManagedDeployment
from devstack.net import LOOPBACK, free_port, port_is_free
from devstack.operator import launch_operator
from devstack.postgres import Postgres
from devstack.process import ManagedProcess
from devstack.prometheus import Prometheus
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
from devstack.supervisor import Launch, Supervisor
from devstack.tools import REPO_ROOT
from prequal import kafka_acl

# Where `make run` lets webhooks go besides the internet: loopback (the demo's receiver).
LOCAL_RECEIVERS = "127.0.0.0/8,::1/128"
ALERT_RULES = REPO_ROOT / "charts" / "loan-prequal" / "files" / "alerts.rules.yaml"
CONSUMER_SPECS = {
    "credit-service": CREDIT,
    "decision-service": DECISION,
    "webhook-dispatcher": DISPATCHER,
}


class PortInUseError(RuntimeError):
    pass


# Called with a line of progress as each component starts.
ProgressFn = Callable[[str], None]


@dataclass
class Ports:
    postgres: int = 5432
    kafka: int = 9092
    api: int = 8000
    prometheus: int = 9090
    hydra: int = 4444
    hydra_admin: int = 4445


@dataclass
class LocalPlatform:
    run_dir: Path
    ports: Ports = field(default_factory=Ports)
    # Prometheus' scrape and rule-evaluation interval; tests shorten it.
    scrape_interval: str = "5s"
    postgres: Postgres | None = None
    kafka: Kafka | None = None
    hydra: Hydra | None = None
    # The two demo clients' credentials: written to .run/env only, never printed or logged.
    credentials: dict[str, str] = field(default_factory=dict)
    control_plane: ControlPlane | None = None
    prometheus: Prometheus | None = None
    operator: ManagedProcess | None = None
    operator_metrics_port: int = 0
    services: Services | None = None
    kubelet: LocalKubelet | None = None
    api_client: client.ApiClient | None = None
    # Restarts the API, the publisher and the operator when they die (the kubelet does the
    # consumers), with a growing back-off; nothing they do stops the platform.
    supervisor: Supervisor = field(default_factory=Supervisor)

    def check_ports(self) -> None:
        flags = {
            "postgres": "--postgres-port",
            "kafka": "--kafka-port",
            "api": "--api-port",
            "prometheus": "--prometheus-port",
            "hydra": "--hydra-port",
            "hydra_admin": "--hydra-admin-port",
        }
        busy = [
            f"{name} port {port} is already in use on {LOOPBACK}: stop whatever listens there "
            f"or pass {flags[name]} PORT"
            for name, port in vars(self.ports).items()
            if not port_is_free(port)
        ]
        if busy:
            raise PortInUseError("\n".join(busy))

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def env_file(self) -> Path:
        return self.run_dir / "env"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    def start(self, progress: ProgressFn) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.check_ports()
        self._start_infrastructure(progress)
        env = self._start_pipeline(progress)
        self._start_services(env, progress)
        assignments = {**self.endpoints(), **self.credentials}
        self.env_file.touch(mode=0o600)
        self.env_file.chmod(0o600)
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in assignments.items()))

    def _start_infrastructure(self, progress: ProgressFn) -> None:
        progress("starting PostgreSQL")
        self.postgres = Postgres(
            self.run_dir / "postgres" / "data", port=self.ports.postgres, durable=True
        ).start()
        progress("starting ORY Hydra (OAuth2 provider) and registering two demo clients")
        self.hydra = Hydra(
            self.run_dir / "hydra",
            self.postgres,
            public_port=self.ports.hydra,
            admin_port=self.ports.hydra_admin,
            # /docs' Authorize button, opened at either name of the loopback address.
            cors_origins=tuple(
                f"http://{host}:{self.ports.api}" for host in (LOOPBACK, "localhost")
            ),
        ).start()
        first = self.hydra.register_client("demo-client")
        other = self.hydra.register_client("demo-other-client")
        # Swagger UI sends the secret as HTTP Basic, which Hydra accepts only from such a client.
        docs = self.hydra.register_client("docs-client", auth_method="client_secret_basic")
        self.credentials = {
            "OIDC_CLIENT_ID": first.client_id,
            "OIDC_CLIENT_SECRET": first.secret,
            "OIDC_OTHER_CLIENT_ID": other.client_id,
            "OIDC_OTHER_CLIENT_SECRET": other.secret,
            "OIDC_DOCS_CLIENT_ID": docs.client_id,
            "OIDC_DOCS_CLIENT_SECRET": docs.secret,
        }
        progress("starting Kafka")
        self.kafka = Kafka(self.run_dir / "kafka" / "data", port=self.ports.kafka).start()
        # `prequalctl dlq` by hand, after `. .run/env`: it connects as prequalctl (0600 file).
        self.credentials |= self.kafka.environment(kafka_acl.PREQUALCTL)
        progress(
            "starting Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager)"
        )
        self.control_plane = ControlPlane(self.run_dir / "kube").start()
        shutil.copyfile(self.control_plane.kubeconfig, self.kubeconfig)
        self.kubeconfig.chmod(0o600)
        self.api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            str(self.kubeconfig)
        )
        progress("starting Prometheus")
        self.prometheus = Prometheus(
            self.run_dir / "prometheus" / "data",
            port=self.ports.prometheus,
            scrape_interval=self.scrape_interval,
            rule_files=[ALERT_RULES] if ALERT_RULES.exists() else [],
        ).start()

    def _start_pipeline(self, progress: ProgressFn) -> dict[str, str]:
        assert self.postgres
        assert self.kafka
        assert self.api_client
        assert self.prometheus
        sample = pipeline.load_sample(self.kafka.bootstrap)
        where = f"{sample.namespace}/{sample.name}"
        progress(f"applying LoanPipeline {where} and its prerequisites (CRD, Secret, Deployments)")
        pipeline.apply_prerequisites(self.api_client, sample, self.postgres.url)
        progress("starting loan-operator")
        self.operator_metrics_port = free_port()
        self.supervisor.keep("loan-operator", self._start_operator, self._start_operator().wait())
        self.prometheus.add_target("loan-operator", f"{LOOPBACK}:{self.operator_metrics_port}")
        progress(f"waiting for LoanPipeline {sample.namespace}/{sample.name} to be Ready")
        pipeline.apply_pipeline(self.api_client, sample)
        pipeline.wait_ready(self.api_client, sample, timeout=120)
        env = pipeline.service_environment(self.api_client, sample)
        env["DATABASE_URL"] = self.postgres.url
        assert self.hydra
        env |= {
            # The demo's receiver listens on loopback; production refuses it (docs/webhooks.md).
            "WEBHOOK_ALLOWED_NETWORKS": LOCAL_RECEIVERS,
            "OIDC_ISSUER": self.hydra.issuer,
            "OIDC_AUDIENCE": AUDIENCE,
            "OIDC_JWKS_URL": self.hydra.jwks_url,
        }
        self._consumers = sample
        self.kafka.grant(pipeline.service_grants(sample, env))
        return env

    def _start_operator(self) -> Launch:
        """Launches the operator (not waiting); `self.operator` is the latest one, for stop()."""
        assert self.kafka
        launch = launch_operator(
            self.kubeconfig,
            self.log_dir,
            self.operator_metrics_port,
            extra_env=self.kafka.environment(),  # the operator is the broker's super user
        )
        assert isinstance(launch.process, ManagedProcess)
        self.operator = launch.process
        return launch

    def _start_services(self, env: dict[str, str], progress: ProgressFn) -> None:
        assert self.api_client
        assert self.prometheus
        progress("migrating the database (prequalctl db upgrade)")
        migrate(env, self.log_dir)
        assert self.kafka
        self.services = Services(env, self.log_dir, self.kafka.identities())
        progress("starting prequal-api")
        self.supervisor.keep("prequal-api", self._start_api, self._start_api().wait())
        progress("starting outbox-publisher")
        self.supervisor.keep(
            "outbox-publisher", self._start_publisher, self._start_publisher().wait()
        )

        prometheus = self.prometheus

        def scrape(deployment: ManagedDeployment, service: RunningService) -> None:
            prometheus.add_target(deployment.spec.name, service.metrics_address)

        self.kubelet = LocalKubelet(self.api_client, self.services, on_start=scrape)
        for consumer in self._consumers.consumers:
            spec = CONSUMER_SPECS[consumer["name"]]
            self.kubelet.manage(
                self._consumers.namespace,
                consumer["deployment"],
                spec,
                {"CONSUMER_GROUP": consumer["consumerGroup"]},
            )
        progress("starting the consumers, as many as the operator scales their Deployments to")
        self.kubelet.settle()

    def _start_api(self) -> Launch:
        """Launches an API instance (not waiting: the Supervisor or the caller waits)."""
        assert self.services
        assert self.prometheus
        api = self.services.launch(API, port=self.ports.api, extra_env={"API_HOST": LOOPBACK})
        self.prometheus.add_target("prequal-api", api.metrics_address)
        return self.services.as_launch(api)

    def _start_publisher(self) -> Launch:
        assert self.services
        assert self.prometheus
        publisher = self.services.launch(PUBLISHER)
        self.prometheus.add_target("outbox-publisher", f"{LOOPBACK}:{publisher.port}")
        return self.services.as_launch(publisher)

    def demo_client(self) -> OAuthClient:
        """The first demo client (OIDC_CLIENT_ID in .run/env), to get tokens with."""
        return OAuthClient(
            self.credentials["OIDC_CLIENT_ID"],
            self.credentials["OIDC_CLIENT_SECRET"],
            SCOPES,
            AUDIENCE,
        )

    def tick(self) -> None:
        """Called every second or so from the main thread while the platform runs."""
        self.supervisor.tick()
        if self.kubelet:
            self.kubelet.sync()

    def endpoints(self) -> dict[str, str]:
        assert self.postgres
        assert self.kafka
        assert self.prometheus
        return {
            "API_URL": f"http://{LOOPBACK}:{self.ports.api}",
            "DATABASE_URL": self.postgres.url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap,
            "KUBECONFIG": str(self.kubeconfig.resolve()),
            "PROMETHEUS_URL": self.prometheus.url,
            "OPERATOR_METRICS_URL": f"http://{LOOPBACK}:{self.operator_metrics_port}/metrics",
            "OIDC_ISSUER": self.hydra.issuer if self.hydra else "",
            "OIDC_TOKEN_URL": self.hydra.token_url if self.hydra else "",
            "OIDC_AUDIENCE": AUDIENCE,
            "OIDC_SCOPE": f"'{SCOPES}'",
        }

    def stop(self) -> None:
        if self.kubelet:
            self.kubelet.stop()
        if self.services:
            self.services.stop_all()
        if self.operator:
            self.operator.stop()
        for component in (
            self.prometheus,
            self.control_plane,
            self.kafka,
            self.hydra,
            self.postgres,
        ):
            if component is not None:
                component.stop()
        if self.api_client:
            self.api_client.close()  # type: ignore[no-untyped-call]
