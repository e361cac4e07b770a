"""The platform's own processes, started from their console scripts as they run in production.

Used by `make run` and by the end-to-end tests, so both exercise the same command lines and
settings (docs/configuration.md). Each service is a ManagedProcess with its log under
`log_dir`, ready when its health endpoint answers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devstack.net import LOOPBACK, free_port, http_ok
from devstack.process import ComponentStartError, ManagedProcess
from devstack.supervisor import Launch
from prequal import kafka_acl
from prequal.db.roles import RoleNames


def console_script(name: str) -> str:
    """The installed console script next to this interpreter (the venv's bin/)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ComponentStartError(f"console script {name} not found: run `make venv`")
    return found


@dataclass(frozen=True)
class ServiceSpec:
    """How one service runs: its console script, its port and where it says it is healthy."""

    name: str
    script: str
    port_env: str
    health_path: str
    # Set when /metrics has a port of its own (the API's): started on a free port.
    metrics_port_env: str = ""
    # The service's own database role (prequal.db.roles): its DATABASE_URL names that role.
    db_role: str = ""
    # The private keys this service holds: the credit service those that open personal data,
    # the webhook dispatcher the one that opens signing secrets; the others none.
    opens: tuple[str, ...] = ()
    # Only the API holds the blind-index keys (and `prequalctl reindex`, run by a person).
    indexes: bool = False
    # The service's own Kafka principal (prequal.kafka_acl); none: not a Kafka client.
    kafka_principal: str = ""


# What opens sealed data keys and legacy PAN ciphertexts (the key Secret's private part).
DATA_KEY_OPENERS = ("SEALING_PRIVATE_KEYS", "PAN_ENCRYPTION_KEYS", "PAN_ACTIVE_KEY_ID")
# What opens webhook signing secrets (the `<keySecret>-webhooks` Secret's private part).
WEBHOOK_SECRET_OPENERS = ("WEBHOOK_SEALING_PRIVATE_KEYS",)
OPENING_KEYS = DATA_KEY_OPENERS + WEBHOOK_SECRET_OPENERS
# The index-key Secret's settings (prequal.blind_index).
INDEX_KEYS = ("PAN_INDEX_KEYS", "PAN_INDEX_ACTIVE_KEY_ID", "PAN_BLIND_INDEX_KEY")

API = ServiceSpec(
    "prequal-api", "prequal-api", "API_PORT", "/ready", "API_METRICS_PORT", "api", indexes=True
)
PUBLISHER = ServiceSpec(
    "outbox-publisher",
    "outbox-publisher",
    "METRICS_PORT",
    "/health",
    db_role="publisher",
    kafka_principal=kafka_acl.PUBLISHER,
)
CREDIT = ServiceSpec(
    "credit-service",
    "credit-service",
    "METRICS_PORT",
    "/health",
    db_role="credit",
    opens=DATA_KEY_OPENERS,
    kafka_principal=kafka_acl.CREDIT_SERVICE,
)
DECISION = ServiceSpec(
    "decision-service",
    "decision-service",
    "METRICS_PORT",
    "/health",
    db_role="decision",
    kafka_principal=kafka_acl.DECISION_SERVICE,
)
DISPATCHER = ServiceSpec(
    "webhook-dispatcher",
    "webhook-dispatcher",
    "METRICS_PORT",
    "/health",
    db_role="webhooks",
    opens=WEBHOOK_SECRET_OPENERS,
    kafka_principal=kafka_acl.WEBHOOK_DISPATCHER,
)
ALL_SERVICES = (API, PUBLISHER, CREDIT, DECISION, DISPATCHER)


def as_role(database_url: str, role: str) -> str:
    """The same libpq URL, connecting as `role` (no password: local trust authentication)."""
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


def migrate(env: Mapping[str, str], log_dir: Path) -> None:
    """`prequalctl db upgrade`, then `prequalctl db roles`, as the Helm hook Job runs them."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for verb in ("upgrade", "roles"):
        result = subprocess.run(
            [console_script("prequalctl"), "db", verb],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        with (log_dir / "migrate.log").open("w" if verb == "upgrade" else "a") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise ComponentStartError(f"prequalctl db {verb} failed:\n{result.stderr[-4000:]}")


@dataclass
class RunningService:
    spec: ServiceSpec
    port: int
    process: ManagedProcess
    metrics_port: int = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def metrics_address(self) -> str:
        """host:port serving /metrics (the service port unless it has its own)."""
        return f"{LOOPBACK}:{self.metrics_port or self.port}"


@dataclass
class Services:
    """Starts services by spec with a shared environment; `instance` tells replicas apart."""

    env: Mapping[str, str]
    log_dir: Path
    # KAFKA_* settings by Kafka principal: each service connects as its own (devstack.kafka).
    kafka_identities: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)
    running: list[RunningService] = field(default_factory=list)

    def start(
        self,
        spec: ServiceSpec,
        *,
        port: int | None = None,
        instance: int = 0,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> RunningService:
        service = self.launch(spec, port=port, instance=instance, extra_env=extra_env)
        self.wait_ready(service, timeout)
        return service

    def launch(
        self,
        spec: ServiceSpec,
        *,
        port: int | None = None,
        instance: int = 0,
        extra_env: Mapping[str, str] | None = None,
    ) -> RunningService:
        """Starts the process without waiting for it: several can then start side by side."""
        port = port or free_port()
        metrics_port = free_port() if spec.metrics_port_env else 0
        env = {**os.environ, **self.env, spec.port_env: str(port), **(extra_env or {})}
        if spec.db_role and env.get("DATABASE_URL"):
            env["DATABASE_URL"] = as_role(env["DATABASE_URL"], RoleNames().of(spec.db_role))
        if spec.kafka_principal in self.kafka_identities:
            env.update(self.kafka_identities[spec.kafka_principal])
        elif not spec.kafka_principal:
            env.pop("KAFKA_SASL_PASSWORD", None)  # not a Kafka client: no Kafka password
        for name in OPENING_KEYS:
            if name not in spec.opens:
                env.pop(name, None)
        if not spec.indexes:
            for name in INDEX_KEYS:
                env.pop(name, None)
        if metrics_port:
            env[spec.metrics_port_env] = str(metrics_port)
        suffix = f"-{instance}" if instance else ""
        process = ManagedProcess(
            f"{spec.name}{suffix}",
            [console_script(spec.script)],
            self.log_dir / f"{spec.name}{suffix}.log",
            env=env,
            stop_timeout=30,
        )
        process.start()
        service = RunningService(spec, port, process, metrics_port)
        self.running.append(service)
        return service

    def wait_ready(self, service: RunningService, timeout: float = 60) -> None:
        """Waits for a launched service's health endpoint; a failed start leaves nothing behind."""
        try:
            service.process.wait_ready(
                lambda: http_ok(f"{service.url}{service.spec.health_path}"), timeout
            )
        except ComponentStartError:
            self.stop(service)
            raise

    def as_launch(self, service: RunningService, timeout: float = 60) -> Launch:
        """A launched service as the Supervisor restarts it: ready when its health endpoint
        answers; given up on, it leaves nothing behind."""
        return Launch(
            service.process,
            lambda: http_ok(f"{service.url}{service.spec.health_path}"),
            timeout,
            discard=lambda: self.stop(service),
        )

    def stop(self, service: RunningService) -> None:
        service.process.stop()
        if service in self.running:
            self.running.remove(service)

    def stop_all(self) -> None:
        for service in reversed(list(self.running)):
            self.stop(service)
