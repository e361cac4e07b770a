"""The leak dump: what a session's PostgreSQL and Kafka hold, written to files for the leak scan.

The session fixtures (tests/conftest.py) call these before they stop their servers; the files go
to `<basetemp>/leak-scan/`, where `tests/lanes.sh` scans them with everything else after both
lanes (tests/leakscan.py). A dump that fails leaves a `*.dump-failed` note with the error, and
the scan fails on it: data nobody could read is data nobody vetted.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psycopg
from confluent_kafka import KafkaException

from devstack.kafka import Kafka
from devstack.net import LOOPBACK
from devstack.postgres import SUPERUSER, Postgres
from devstack.tools import tool
from tests.kafka_reader import all_topics, dump_topic
from tests.leakscan import FAILED_DUMP_SUFFIX

_GROUP = "leak-dump"


def _note_failure(out: Path, label: str, exc: BaseException) -> None:
    (out / f"{label}{FAILED_DUMP_SUFFIX}").write_text(f"{type(exc).__name__}: {exc}\n")


def _note_time(out: Path, label: str, what: str, started: float) -> None:
    """One line per dump in `dumps.log`: what it cost the run."""
    with (out / "dumps.log").open("a") as log:
        log.write(f"{label}: {what} in {time.monotonic() - started:.1f} s\n")


def dump_postgres(server: Postgres, out: Path, label: str) -> None:
    """`pg_dump` (plain SQL, bytea as hex) of every database in `server`, one file each."""
    out.mkdir(parents=True, exist_ok=True)
    pg_dump = Path(tool("postgres")).resolve().parent / "pg_dump"
    started = time.monotonic()
    try:
        with psycopg.connect(server.url_for("postgres"), connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1"
            ).fetchall()
        server_args = ("-h", LOOPBACK, "-p", str(server.port), "-U", SUPERUSER)
        for (database,) in rows:
            with (out / f"{label}-{database}.sql").open("wb") as file:
                subprocess.run(
                    [str(pg_dump), *server_args, "--dbname", database],
                    stdout=file,
                    stderr=subprocess.PIPE,
                    check=True,
                    timeout=300,
                )
        _note_time(out, label, f"pg_dump of {len(rows)} databases", started)
    except (psycopg.Error, subprocess.SubprocessError, OSError) as exc:
        _note_failure(out, label, exc)


def dump_kafka(broker: Kafka, out: Path, label: str) -> None:
    """Every record of every topic (but Kafka's own), all partitions from the beginning: one
    line per record with its partition, offset, key, header values and value, as raw bytes."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        with (out / f"{label}-topics.dump").open("wb") as file:
            topics = all_topics(broker.bootstrap, _GROUP)
            for topic in topics:
                for record in dump_topic(broker.bootstrap, topic, _GROUP):
                    file.write(
                        f"{topic}[{record.partition}]@{record.offset} key=".encode()
                        + record.key
                        + b" headers="
                        + record.raw_headers
                        + b" value="
                        + record.value
                        + b"\n"
                    )
        _note_time(out, label, f"{len(topics)} topics", started)
    except (RuntimeError, OSError, KeyError, KafkaException) as exc:
        _note_failure(out, label, exc)
