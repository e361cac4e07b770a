"""A single-node Kafka 4 broker in KRaft combined mode, from the jars `make tools` resolved."""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from devstack.net import LOOPBACK, free_port, tcp_open
from devstack.process import ComponentStartError, ManagedProcess, SingleProcessComponent
from devstack.tools import kafka_home, tool

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
    process: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "kafka.log"

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{LOOPBACK}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{LOOPBACK}:{self.port},"
            f"CONTROLLER://{LOOPBACK}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
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

    def start(self, timeout: float = 90) -> Kafka:
        config = self._write_config()
        if not (self.data_dir / "logs" / "meta.properties").exists():
            cluster_id = _kafka_uuid()
            result = subprocess.run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    # `=`: a random id may start with "-", which would read as an option.
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(config),
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise ComponentStartError(
                    f"formatting Kafka storage failed:\n{result.stdout}\n{result.stderr}"
                )
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

    def _answers_metadata(self) -> bool:
        if not tcp_open(self.port):
            return False  # not listening yet: don't let librdkafka log connection refusals
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 2000})
        metadata = admin.list_topics(timeout=2)
        return len(metadata.brokers) == 1


def _kafka_uuid() -> str:
    """Kafka's cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
