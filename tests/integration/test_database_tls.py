"""`sslmode=verify-full` works end to end: a PostgreSQL serving a certificate from a generated
CA; the services' libpq URLs (psycopg) and the migrations' (SQLAlchemy/Alembic) connect with
the CA, and refuse a server whose certificate another CA signed or that names another host."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.pki import ControlPlanePki
from devstack.postgres import Postgres
from prequal.db import migrate


def _for_server(files: list[Path], directory: Path) -> list[Path]:
    """Copies the files where the server user may read them (a key: only that user)."""
    directory.mkdir(parents=True, exist_ok=True)
    copies = []
    for source in files:
        copy = directory / source.name
        shutil.copyfile(source, copy)
        copy.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(copy, "postgres", "postgres")
        copies.append(copy)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    return copies


@pytest.fixture(scope="module")
def tls_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Postgres, Path]]:
    base = tmp_path_factory.mktemp("tls-postgres")
    pki = ControlPlanePki(base / "pki").ensure()  # a CA; a serving cert for localhost, 127.0.0.1
    cert, key = _for_server([pki.serving_cert, pki.serving_key], base / "pg" / "tls")
    server = Postgres(
        base / "pg" / "data",
        settings={"ssl": "on", "ssl_cert_file": str(cert), "ssl_key_file": str(key)},
    )
    server.start()
    try:
        yield server, pki.ca_cert
    finally:
        server.stop()


def _verify_full(server: Postgres, ca: Path, host: str = "127.0.0.1") -> str:
    return (
        f"postgresql://postgres@{host}:{server.port}/{server.database}"
        f"?sslmode=verify-full&sslrootcert={ca}&hostaddr=127.0.0.1"
    )


def test_services_and_migrations_connect_with_verify_full(
    tls_postgres: tuple[Postgres, Path],
) -> None:
    server, ca = tls_postgres
    url = _verify_full(server, ca)
    migrate.upgrade(url)  # SQLAlchemy + Alembic pass sslmode and sslrootcert to libpq
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True,)
        assert migrate.current_revision(conn) == migrate.head_revision()


def test_verify_full_refuses_a_certificate_from_another_ca(
    tls_postgres: tuple[Postgres, Path], tmp_path: Path
) -> None:
    server, _ = tls_postgres
    # Another CA of the same name (what an impostor would make): its signature does not verify.
    other_ca = ControlPlanePki(tmp_path / "other").ensure().ca_cert
    with pytest.raises(psycopg.OperationalError, match="SSL error"):
        psycopg.connect(_verify_full(server, other_ca), connect_timeout=10)


def test_verify_full_refuses_a_certificate_for_another_host(
    tls_postgres: tuple[Postgres, Path],
) -> None:
    server, ca = tls_postgres
    # The address is right, the name is not the certificate's: verify-full checks the name.
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        psycopg.connect(_verify_full(server, ca, host="db.elsewhere.example"), connect_timeout=10)
