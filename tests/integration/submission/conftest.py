"""Fixtures of the submission path: a migrated database, PAN keys, the API and the publisher as
real processes (console scripts), topics created with the admin client."""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from devstack.kafka import Kafka
from devstack.net import LOOPBACK, free_port, http_ok
from devstack.postgres import Postgres
from devstack.process import ManagedProcess
from devstack.services import as_role
from prequal.db import migrate, roles
from prequal.kafka import create_topics
from prequalctl.keys import for_role, generate_keys
from tests.tokens import Oidc

BIN = Path(sys.executable).parent


def _db_name(request: pytest.FixtureRequest) -> str:
    return "sub_" + re.sub(r"[^a-z0-9]+", "_", request.module.__name__.split(".")[-1].lower())


@pytest.fixture(scope="module")
def database_url(postgres: Postgres, request: pytest.FixtureRequest) -> str:
    """A fresh database per test module, migrated to head, with the services' roles granted.

    The URL is the superuser's (tests arrange and inspect with it); the API and the publisher
    connect as their own roles (`api_env`, `publisher_env`), as they do in production.
    """
    url = postgres.create_database(_db_name(request))
    migrate.upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        roles.ensure_roles(conn)
    return url


@pytest.fixture(scope="module")
def pan_keys() -> dict[str, str]:
    return generate_keys("v1")


@pytest.fixture(scope="module")
def topic(kafka: Kafka) -> str:
    name = f"submitted-{uuid.uuid4().hex[:8]}"
    create_topics(kafka.connection(), {name: 3})
    return name


def base_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
    env["SECRETS_DIR"] = "/nonexistent"
    env.update(settings)
    return env


@dataclass
class ApiProcess:
    process: ManagedProcess
    url: str
    token: str = ""
    metrics_url: str = ""

    def client(self, timeout: float = 10.0, token: str | None = None) -> httpx.Client:
        """A client that sends `token` (default: the one the API was started with) as bearer."""
        bearer = self.token if token is None else token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
        return httpx.Client(base_url=self.url, timeout=timeout, headers=headers)


def start_api(
    tmp: Path,
    env: dict[str, str],
    name: str = "prequal-api",
    *,
    token: str = "",
    port: int | None = None,
) -> ApiProcess:
    """The API as a process; `port` when its URL must be known before (a CORS origin)."""
    port, metrics_port = port or free_port(), free_port()
    process = ManagedProcess(
        name,
        [str(BIN / "prequal-api")],
        tmp / f"{name}.log",
        env={
            **env,
            "API_HOST": LOOPBACK,
            "API_PORT": str(port),
            "API_METRICS_PORT": str(metrics_port),
        },
    )
    process.start()
    url = f"http://{LOOPBACK}:{port}"
    process.wait_ready(lambda: http_ok(f"{url}/health"), timeout=30)
    return ApiProcess(process, url, token, f"http://{LOOPBACK}:{metrics_port}/metrics")


@pytest.fixture(scope="module")
def api_env(
    database_url: str, pan_keys: dict[str, str], kafka_topic_name: str, oidc: Oidc
) -> dict[str, str]:
    return base_env(
        DATABASE_URL=as_role(database_url, roles.RoleNames().of("api")),
        TOPIC_APPLICATIONS_SUBMITTED=kafka_topic_name,
        **for_role(pan_keys, "api"),
        **oidc.api_env(),
    )


@pytest.fixture(scope="module")
def kafka_topic_name() -> str:
    """The topic the API writes into outbox rows; API-only modules need no broker for it."""
    return "loan_applications_submitted"


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, api_env: dict[str, str], oidc: Oidc
) -> Iterator[ApiProcess]:
    proc = start_api(tmp_path_factory.mktemp("api"), api_env, token=oidc.token())
    try:
        yield proc
    finally:
        proc.process.stop()


@pytest.fixture
def client(api: ApiProcess) -> Iterator[httpx.Client]:
    with api.client() as http:
        yield http


@dataclass
class PublisherProcess:
    process: ManagedProcess
    metrics_url: str


def start_publisher(
    tmp: Path, env: dict[str, str], name: str = "outbox-publisher", **settings: str
) -> PublisherProcess:
    port = free_port()
    process = ManagedProcess(
        name,
        [str(BIN / "outbox-publisher")],
        tmp / f"{name}.log",
        env={**env, "METRICS_PORT": str(port), **settings},
    )
    process.start()
    url = f"http://{LOOPBACK}:{port}"
    process.wait_ready(lambda: http_ok(f"{url}/health"), timeout=30)
    return PublisherProcess(process, f"{url}/metrics")


@pytest.fixture(scope="module")
def publisher_env(database_url: str, kafka: Kafka, topic: str) -> dict[str, str]:
    return base_env(
        DATABASE_URL=as_role(database_url, roles.RoleNames().of("publisher")),
        **kafka.environment(),
        TOPIC_APPLICATIONS_SUBMITTED=topic,
        OUTBOX_POLL_INTERVAL_SECONDS="0.5",
        OUTBOX_BACKOFF_MAX_SECONDS="2",
        OUTBOX_REBALANCE_INTERVAL_SECONDS="0.5",
    )
