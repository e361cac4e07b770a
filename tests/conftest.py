"""Session-wide fixtures: the real components, started once per test run by the devstack runner.

Each fixture starts its component on first use, on a free loopback port with its own data
directory under pytest's temporary folder, and stops it when the session ends, also after a
failure or Ctrl-C. Before stopping PostgreSQL or Kafka it dumps what they hold into
`<basetemp>/leak-scan/` for the leak scan after the run (tests/leakdump.py). The tier marker
of each test comes from its folder (tests/unit → `unit`, …).
"""

from __future__ import annotations

import signal
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.hydra import Hydra
from devstack.kafka import Kafka
from devstack.kube import ControlPlane
from devstack.postgres import Postgres
from devstack.prometheus import Prometheus
from tests.leakdump import dump_kafka, dump_postgres
from tests.tokens import Oidc

TIERS = ("unit", "integration", "k8s", "e2e", "cluster", "images")


def _leak_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "leak-scan"


def _raise_interrupt(signum: int, frame: types.FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (CI cancelling, `kill`) tears fixtures down like Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_interrupt)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        tier = item.path.relative_to(root).parts[0]
        if tier not in TIERS:
            folders = ", ".join(f"tests/{t}" for t in TIERS)
            raise pytest.UsageError(f"{item.nodeid}: a test lives in one of {folders}")
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A private PostgreSQL 15 cluster with an empty `prequal` database."""
    server = Postgres(tmp_path_factory.mktemp("postgres") / "data")
    started = False
    try:
        server.start()
        started = True
        yield server
    finally:
        if started:
            dump_postgres(server, _leak_dir(tmp_path_factory), server.data_dir.parent.name)
        server.stop()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kafka]:
    """A single-node KRaft Kafka broker; topics are never auto-created."""
    broker = Kafka(tmp_path_factory.mktemp("kafka") / "data")
    started = False
    try:
        broker.start()
        started = True
        yield broker
    finally:
        if started:
            dump_kafka(broker, _leak_dir(tmp_path_factory), broker.data_dir.parent.name)
        broker.stop()


@pytest.fixture(scope="module")
def private_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A PostgreSQL of the module's own, for outage tests that stop it: a restart that fails
    there breaks only that module, never the session's server every later test uses."""
    server = Postgres(tmp_path_factory.mktemp("private-postgres") / "data")
    started = False
    try:
        server.start()
        started = True
        yield server
    finally:
        if started:
            dump_postgres(server, _leak_dir(tmp_path_factory), server.data_dir.parent.name)
        server.stop()


@pytest.fixture(scope="module")
def private_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kafka]:
    """A Kafka broker of the module's own, for outage tests that stop it (see private_postgres)."""
    broker = Kafka(tmp_path_factory.mktemp("private-kafka") / "data")
    started = False
    try:
        broker.start()
        started = True
        yield broker
    finally:
        if started:
            dump_kafka(broker, _leak_dir(tmp_path_factory), broker.data_dir.parent.name)
        broker.stop()


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver (RBAC on) and kube-controller-manager; `.kubeconfig` is admin."""
    plane = ControlPlane(tmp_path_factory.mktemp("kube"))
    try:
        yield plane.start()
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A Prometheus server scraping every second; register targets with `add_target`."""
    server = Prometheus(tmp_path_factory.mktemp("prometheus") / "data")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def oidc(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oidc]:
    """ORY Hydra on its own database in the session's PostgreSQL, with two registered clients
    (scopes `applications:write applications:read`); `oidc.token()` gets a JWT access token."""
    hydra = Hydra(tmp_path_factory.mktemp("hydra"), postgres)
    try:
        hydra.start(timeout=240)
        yield Oidc(hydra, hydra.register_client("client-a"), hydra.register_client("client-b"))
    finally:
        hydra.stop()
