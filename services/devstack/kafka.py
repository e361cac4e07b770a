"""A single-node Kafka 4 broker in KRaft combined mode, from the jars `make tools` resolved.

By default its one client listener is SASL_SSL (SCRAM-SHA-512 over TLS with a generated CA, as
in production; docs/kafka-security.md): the StandardAuthorizer denies what no ACL allows, the
`admin` user is the super user, and every service principal of prequal.kafka_acl exists with a
password generated on the first start (kept, 0600, beside the data). The controller listener
stays on loopback, authenticated with SASL/PLAIN as `admin` (KRaft controllers cannot use
SCRAM: its credentials live in the metadata they serve). `security="PLAINTEXT"` runs it open,
for measuring what security costs.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from confluent_kafka.admin import AdminClient

from devstack.net import LOOPBACK, free_port, tcp_open
from devstack.pki import ServingPki
from devstack.process import ComponentStartError, ManagedProcess, SingleProcessComponent
from devstack.tools import kafka_home, tool
from loan_operator.kafka_admin import KafkaAdmin
from prequal.kafka_acl import SERVICE_PRINCIPALS, Grant
from prequal.kafka_security import KafkaConnection

ADMIN = "admin"

_LOG4J2_PROPERTIES = """\
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.stdout.ref = STDOUT
"""


@dataclass
class Kafka(SingleProcessComponent):
    """One broker that is also the KRaft controller. `bootstrap` is `127.0.0.1:<port>`."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    heap: str = "768m"
    log_level: str = "INFO"
    security: Literal["SASL_SSL", "PLAINTEXT"] = "SASL_SSL"
    process: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "kafka.log"

    @property
    def pki(self) -> ServingPki:
        return ServingPki(self.data_dir / "tls", "kafka")

    @property
    def _credentials_path(self) -> Path:
        return self.data_dir / "credentials.json"

    def passwords(self) -> dict[str, str]:
        """SCRAM passwords by user name (admin and every service principal), made once."""
        if self._credentials_path.exists():
            loaded: dict[str, str] = json.loads(self._credentials_path.read_text())
            return loaded
        made = {user: secrets.token_urlsafe(24) for user in (ADMIN, *SERVICE_PRINCIPALS)}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._credentials_path.touch(mode=0o600)
        self._credentials_path.write_text(json.dumps(made))
        return made

    def connection(self, principal: str = ADMIN) -> KafkaConnection:
        """How a client connects as `principal` (`admin`, the super user, by default)."""
        if self.security == "PLAINTEXT":
            return KafkaConnection(self.bootstrap)
        return KafkaConnection(
            self.bootstrap,
            "SASL_SSL",
            "SCRAM-SHA-512",
            principal,
            self.passwords()[principal],
            str(self.pki.ca_cert),
        )

    def environment(self, principal: str = ADMIN) -> dict[str, str]:
        """The KAFKA_* settings of a process that connects as `principal`."""
        return self.connection(principal).environment()

    def identities(self) -> dict[str, dict[str, str]]:
        """Every service principal's KAFKA_* settings (for devstack.services.Services)."""
        return {principal: self.environment(principal) for principal in SERVICE_PRINCIPALS}

    def grant(self, grants: list[Grant]) -> None:
        """Creates ALLOW ACLs as the super user (a PLAINTEXT broker authorizes nothing)."""
        if self.security != "SASL_SSL":
            return
        admin = KafkaAdmin(self.connection(), timeout=30)
        admin.grant(grants)
        deadline = time.monotonic() + 30
        while not admin.granted(grants):  # the broker applies them from the metadata log
            if time.monotonic() > deadline:
                raise ComponentStartError("Kafka did not apply the ACLs within 30 s")
            time.sleep(0.1)

    def _security_props(self) -> dict[str, str]:
        if self.security == "PLAINTEXT":
            return {
                "listeners": f"PLAINTEXT://{LOOPBACK}:{self.port},"
                f"CONTROLLER://{LOOPBACK}:{self.controller_port}",
                "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{self.port}",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            }
        admin = self.passwords()[ADMIN]
        pki = self.pki.ensure()
        return {
            "listeners": f"SASL_SSL://{LOOPBACK}:{self.port},"
            f"CONTROLLER://{LOOPBACK}:{self.controller_port}",
            "advertised.listeners": f"SASL_SSL://{LOOPBACK}:{self.port}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{ADMIN}" password="{admin}";'
            ),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{ADMIN}" password="{admin}" user_{ADMIN}="{admin}";'
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(pki.keystore),
            # The broker is also its own inter-broker client: it trusts the CA it serves with.
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(pki.ca_cert),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{LOOPBACK}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            **self._security_props(),
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # The operator owns topics: nothing appears because a client asked for it.
            "auto.create.topics.enable": "false",
            "delete.topic.enable": "true",
        }
        config = self.data_dir / "server.properties"
        config.touch(mode=0o600)  # it holds the admin password
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.data_dir / "log4j2.properties").write_text(
            _LOG4J2_PROPERTIES.format(level=self.log_level.lower())
        )
        return config

    def _java(self, main: str, *args: str) -> list[str]:
        classpath = str(kafka_home() / "libs" / "*")
        return [
            tool("java"),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            classpath,
            main,
            *args,
        ]

    def start(self, timeout: float = 180) -> Kafka:
        config = self._write_config()
        if not (self.data_dir / "logs" / "meta.properties").exists():
            self._format(config)
        self.process = ManagedProcess(
            "kafka",
            self._java("kafka.Kafka", str(config)),
            self.log_path,
            env={**os.environ, "KAFKA_HEAP_OPTS": ""},
            stop_timeout=30,
        )
        self.process.start()
        self.process.wait_ready(self._answers_metadata, timeout)
        return self

    def _format(self, config: Path) -> None:
        """Formats the storage, with every SCRAM user when secured.

        The arguments go through a java @argfile (0600, removed at once) so that no password
        is ever on a command line another local user could read.
        """
        cluster_id = _kafka_uuid()
        args = [
            "format",
            "--standalone",
            # `=`: a random id may start with "-", which would read as an option.
            f"--cluster-id={cluster_id}",
            "-c",
            str(config),
        ]
        if self.security == "SASL_SSL":
            for user, password in self.passwords().items():
                args += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        # The launcher expands an @argfile up to and including the main class's arguments.
        argfile = self.data_dir / "format.args"
        argfile.touch(mode=0o600)
        argfile.write_text("".join(f'"{a}"\n' for a in ["kafka.tools.StorageTool", *args]))
        try:
            result = subprocess.run(
                [*self._java(f"@{argfile}")], capture_output=True, text=True, check=False
            )
        finally:
            argfile.unlink()
        if result.returncode != 0:
            raise ComponentStartError(
                f"formatting Kafka storage failed:\n{result.stdout}\n{result.stderr}"
            )

    def _answers_metadata(self) -> bool:
        if not tcp_open(self.port):
            return False  # not listening yet: don't let librdkafka log connection refusals
        admin = AdminClient({**self.connection().config(), "socket.timeout.ms": 2000})
        metadata = admin.list_topics(timeout=2)
        return len(metadata.brokers) == 1


def _kafka_uuid() -> str:
    """Kafka's cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
