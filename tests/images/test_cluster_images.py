"""The other images `make images` builds for the local cluster: each starts the way its manifest
(manifests/dev, manifests/monitoring) or the node (pause, CoreDNS) runs it, with no network."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml

from devstack.tools import REPO_ROOT
from tests.images.conftest import Built, docker, image_tags

pytestmark = pytest.mark.timeout(3600)

TAGS = image_tags()
# Where images/kafka/entrypoint.sh writes the settings it read from KAFKA_*.
KAFKA_PROPERTIES = "/tmp/kafka-config/server.properties"  # noqa: S108


def wait_for(check: list[str], name: str, timeout: float = 90) -> str:
    """Runs `docker exec NAME CHECK...` until it succeeds; the container's log on failure."""
    deadline = time.monotonic() + timeout
    while True:
        done = docker("exec", name, *check)
        if done.returncode == 0:
            return done.stdout
        if time.monotonic() > deadline:
            logs = docker("logs", "--tail", "40", name)
            pytest.fail(
                f"{' '.join(check)} never succeeded:\n{done.stderr}\n{logs.stdout}{logs.stderr}"
            )
        time.sleep(0.5)


def start(container: list[str], *argv: str) -> str:
    name = f"prequal-test-{uuid.uuid4().hex[:10]}"
    done = docker("run", "--detach", "--name", name, "--network", "none", *argv)
    assert done.returncode == 0, done.stderr
    container.append(name)
    return name


def test_every_image_is_listed_with_its_size_and_build_time(built: Built) -> None:
    listed = {tag for image in built.document["images"] for tag in image["tags"]}
    # The node's Ingress controller only on request (PREQUAL_EXTRA_IMAGES, docs/cluster.md).
    extras = {"TRAEFIK_IMAGE"}
    wanted = {v for k, v in TAGS.items() if k.endswith("_IMAGE") and k not in extras}
    assert wanted <= listed
    for image in built.document["images"]:
        assert image["size_bytes"] > 0, image
        assert image["build_seconds"] is not None, image


def test_postgres_initialises_and_answers_as_the_manifest_runs_it(
    built: Built, container: list[str]
) -> None:
    name = start(
        container,
        "--user",
        "999:999",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--tmpfs",
        "/var/lib/postgresql/data:uid=999,gid=999",
        "--tmpfs",
        "/var/run/postgresql:uid=999,gid=999",
        "-e",
        "POSTGRES_USER=prequal",
        "-e",
        "POSTGRES_DB=prequal",
        "-e",
        "POSTGRES_HOST_AUTH_METHOD=trust",
        "-e",
        "PGDATA=/var/lib/postgresql/data/pgdata",
        TAGS["POSTGRES_IMAGE"],
        "-c",
        "autovacuum_naptime=5s",
    )
    wait_for(["pg_isready", "-U", "prequal", "-d", "prequal"], name)
    shown = wait_for(
        ["psql", "-U", "prequal", "-d", "prequal", "-Atc", "SHOW autovacuum_naptime"], name
    )
    assert shown.strip() == "5s"


def test_kafka_formats_its_log_and_serves_as_the_manifest_runs_it(
    built: Built, container: list[str]
) -> None:
    env = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://localhost:9092",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
        "KAFKA_HEAP_OPTS": "-Xmx256m -Xms256m",
    }
    name = start(
        container,
        # Kafka resolves its own host name for the wildcard listeners, as a pod's /etc/hosts
        # allows; without a network Docker does not list it.
        "--hostname",
        "kafka",
        "--add-host",
        "kafka:127.0.0.1",
        "--user",
        "1000:1000",
        "--cap-drop",
        "ALL",
        "--tmpfs",
        "/var/lib/kafka/data:uid=1000,gid=1000",
        *(arg for key, value in env.items() for arg in ("-e", f"{key}={value}")),
        TAGS["KAFKA_IMAGE"],
    )
    # The broker logs this once it serves; then the settings it read are the manifest's.
    deadline = time.monotonic() + 120
    while "Kafka Server started" not in (logs := docker("logs", name).stdout):
        assert time.monotonic() < deadline, logs[-3000:]
        time.sleep(1)
    config = docker("exec", name, "cat", KAFKA_PROPERTIES).stdout
    assert "auto.create.topics.enable=false" in config
    assert "log.dirs=/var/lib/kafka/data" in config


def test_prometheus_loads_the_monitoring_manifests_config_and_gets_ready(
    built: Built, container: list[str], tmp_path: Path
) -> None:
    """manifests/monitoring's config discovers pods through Kubernetes: a Prometheus built
    without that discovery (Debian's) refuses the file."""
    manifests = (REPO_ROOT / "manifests" / "monitoring" / "prometheus.yaml").read_text()
    [config_map] = [
        doc
        for doc in yaml.safe_load_all(manifests)
        if doc and doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "prometheus-config"
    ]
    assert "kubernetes_sd_configs" in config_map["data"]["prometheus.yml"]
    config = tmp_path / "prometheus.yml"
    config.write_text(config_map["data"]["prometheus.yml"])
    config.chmod(0o644)
    name = start(
        container,
        "--user",
        "65534:65534",
        "--read-only",
        "--tmpfs",
        "/prometheus:uid=65534",
        "--volume",
        f"{config}:/etc/prometheus/prometheus.yml:ro",
        TAGS["PROMETHEUS_IMAGE"],
        "--config.file=/etc/prometheus/prometheus.yml",
        "--storage.tsdb.path=/prometheus",
        "--web.route-prefix=/prometheus/",
    )
    deadline = time.monotonic() + 60
    while "Server is ready to receive web requests" not in (logs := docker("logs", name).stderr):
        assert time.monotonic() < deadline, logs[-3000:]
        time.sleep(0.5)
    assert "Completed loading of configuration file" in logs, logs[-3000:]
    version = docker("run", "--rm", "--network", "none", TAGS["PROMETHEUS_IMAGE"], "--version")
    assert TAGS["PROMETHEUS_VERSION"].lstrip("v") in version.stdout + version.stderr


def test_the_pause_image_stops_at_once_on_sigterm(built: Built, container: list[str]) -> None:
    name = start(container, "--read-only", TAGS["PAUSE_IMAGE"])
    started = time.monotonic()
    assert docker("stop", "--time", "10", name).returncode == 0
    assert time.monotonic() - started < 5, "pause ignored SIGTERM and waited for SIGKILL"
    state = docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert state == "0"


def test_coredns_reports_its_version_and_plugins(built: Built) -> None:
    done = docker("run", "--rm", "--network", "none", TAGS["COREDNS_IMAGE"], "-plugins")
    assert done.returncode == 0, done.stderr
    assert {"kubernetes", "forward", "cache", "health", "ready"} <= set(done.stdout.split()), (
        done.stdout
    )
    version = docker("run", "--rm", "--network", "none", TAGS["COREDNS_IMAGE"], "-version").stdout
    assert TAGS["COREDNS_VERSION"].lstrip("v") in version, version


def test_traefik_reports_its_version(built: Built) -> None:
    if docker("image", "inspect", TAGS["TRAEFIK_IMAGE"]).returncode != 0:
        pytest.skip("Traefik is built only with PREQUAL_EXTRA_IMAGES=traefik (docs/cluster.md)")
    done = docker("run", "--rm", "--network", "none", TAGS["TRAEFIK_IMAGE"], "version")
    assert done.returncode == 0, done.stderr
    assert TAGS["TRAEFIK_VERSION"] in done.stdout, done.stdout
