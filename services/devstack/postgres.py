"""A private PostgreSQL cluster: initdb into its own directory, `postgres` on a loopback port.

PostgreSQL refuses to run as root, so when we are root the server runs as the `postgres`
system user that Debian's package creates, and owns its data directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from devstack.net import LOOPBACK, free_port
from devstack.process import ComponentStartError, ManagedProcess, SingleProcessComponent
from devstack.tools import tool

SUPERUSER = "postgres"
# SIGINT is PostgreSQL's "fast shutdown": roll back open transactions and exit cleanly.
_FAST_SHUTDOWN = signal.SIGINT


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ComponentStartError(
            "running as root but there is no `postgres` system user to run PostgreSQL as: "
            "install Debian's postgresql package (`make tools` does) or run as a normal user"
        ) from exc
    return "postgres"


def _let_traverse(directory: Path) -> None:
    """Lets the server user reach its data directory through ours: traverse (o+x), never read.

    Temporary directories (pytest's, mkdtemp's) are 0700, which would lock `postgres` out.
    """
    for path in [directory, *directory.parents]:
        mode = path.stat().st_mode
        if path.stat().st_uid == os.geteuid() and not mode & stat.S_IXOTH:
            path.chmod(mode | stat.S_IXOTH)


@dataclass
class Postgres(SingleProcessComponent):
    """One cluster. `url` is a libpq URL to `database` as the superuser (trust auth on loopback)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    database: str = "prequal"
    durable: bool = False
    # More server settings (`-c name=value`), e.g. a test's TLS certificate and key.
    settings: dict[str, str] = field(default_factory=dict)
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/{self.database}"

    def url_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "postgres.log"

    def start(self, timeout: float = 60) -> Postgres:
        user = _server_user()
        pgdata = self.data_dir
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(parents=True, exist_ok=True)
            if user:
                _let_traverse(pgdata.parent)
                shutil.chown(pgdata, user, user)
            result = subprocess.run(
                [
                    tool("initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                user=user,
                group=user,
                check=False,
            )
            if result.returncode != 0:
                raise ComponentStartError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        settings = {
            "listen_addresses": LOOPBACK,
            "port": str(self.port),
            "unix_socket_directories": str(pgdata),
            "max_connections": "200",
            "shared_buffers": "256MB",
            "log_min_messages": "warning",
            "log_line_prefix": "%m [%p] ",
            # The outbox is a queue: its dead rows must go within seconds, not a minute
            # (migration 0003; docs/configuration.md says the same for production servers).
            "autovacuum_naptime": "5s",
        }
        if not self.durable:
            # Tests trade crash safety for speed; `make run` keeps the defaults.
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        settings |= self.settings
        argv = [tool("postgres"), "-D", str(pgdata)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        self.process = ManagedProcess(
            "postgresql", argv, self.log_path, user=user, stop_signal=_FAST_SHUTDOWN
        )
        self.process.start()
        self.process.wait_ready(self._accepts_queries, timeout)
        self._ensure_database()
        return self

    def _accepts_queries(self) -> bool:
        with psycopg.connect(self.url_for("postgres"), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    def _ensure_database(self) -> None:
        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def create_database(self, name: str) -> str:
        """A fresh, empty database in this cluster; returns its URL."""
        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)
