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
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from devstack.kafka import Kafka
from devstack.net import LOOPBACK
from devstack.postgres import SUPERUSER, Postgres
from devstack.tools import tool
from tests.leakscan import FAILED_DUMP_SUFFIX

_GROUP = "leak-dump"
# Reading every record back must end: a partition that never reaches its end fails the dump.
_DUMP_TIMEOUT_S = 300


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
    line per record with its partition, offset, key, header values and value, as raw bytes.
    One consumer reads every partition at once (a consumer per topic cost 2 s each)."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    consumer = Consumer(
        {**broker.connection().config(), "group.id": _GROUP, "enable.auto.commit": False}
    )
    try:
        topics = consumer.list_topics(timeout=30).topics
        ends: dict[tuple[str, int], int] = {}
        for name, metadata in topics.items():
            if name.startswith("__"):
                continue
            for partition in metadata.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), 10)
                if high > low:
                    ends[(name, partition)] = high
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
        deadline = time.monotonic() + _DUMP_TIMEOUT_S
        with (out / f"{label}-topics.dump").open("wb") as file:
            while ends:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(ends)} partitions not read to their end")
                for msg in consumer.consume(num_messages=1000, timeout=1):
                    if msg.error():
                        continue
                    where = (msg.topic() or "", msg.partition() or 0)
                    headers = b"".join(v for _, v in msg.headers() or [] if isinstance(v, bytes))
                    file.write(
                        f"{where[0]}[{where[1]}]@{msg.offset()} key=".encode()
                        + (msg.key() or b"")
                        + b" headers="
                        + headers
                        + b" value="
                        + (msg.value() or b"")
                        + b"\n"
                    )
                    if (msg.offset() or 0) >= ends.get(where, 0) - 1:
                        ends.pop(where, None)
        _note_time(out, label, f"{len(topics)} topics", started)
    except (RuntimeError, OSError, KafkaException) as exc:
        _note_failure(out, label, exc)
    finally:
        consumer.close()
