"""`BENCH_E2E_STATS=1`: what PostgreSQL and Kafka did per application in the e2e throughput run.

PostgreSQL runs with pg_stat_statements; its counters, pg_stat_database's transactions,
pg_stat_wal's WAL bytes and pg_stat_user_tables' row counts are reset after the warm-up and
read after the throughput run, and divided by the applications decided. Indexes that no
statement scanned in the run are listed with the tables' inserts that still maintained them.
Kafka: bytes written to each topic's log (segment sizes before and after, the offsets topic
included) and, through a JMX agent attached to the running broker with `jcmd`, the requests it
served by type. Written to `.bench/e2e-stats.json` and summarised on stdout.

Off by default: pg_stat_statements costs a little CPU per statement, so the CPU figures of a run
with statistics compare only with another run with statistics.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg

from devstack.net import LOOPBACK, free_port
from devstack.tools import kafka_home

PG_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.max": "2000",
    "track_io_timing": "on",
}
_REQUEST_BEANS = "kafka.network:type=RequestMetrics,name=RequestsPerSec,*"
_BYTES_BEANS = "kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec,*"


def enabled() -> bool:
    return os.environ.get("BENCH_E2E_STATS", "") not in {"", "0"}


def settle(url: str, kafka_pid: int, kafka_logs: Path, out: Path) -> E2eStats | None:
    """Waits 2 s after the warm-up; when enabled, starts counting from here."""
    if not enabled():
        time.sleep(2)
        return None
    stats = E2eStats(url, kafka_pid, kafka_logs, out)
    stats.start()
    return stats


def report(stats: E2eStats | None, apps: int) -> None:
    if stats is not None:
        stats.stop(apps)


class E2eStats:
    """Reset with `start()` after the warm-up, read with `stop(apps)` after the run."""

    def __init__(self, url: str, kafka_pid: int, kafka_logs: Path, out: Path) -> None:
        self.url, self.kafka_logs, self.out = url, kafka_logs, out
        self.jmx_port = free_port()
        subprocess.run(
            [
                "jcmd",
                str(kafka_pid),
                "ManagementAgent.start",
                f"jmxremote.port={self.jmx_port}",
                f"jmxremote.rmi.port={self.jmx_port}",
                f"jmxremote.host={LOOPBACK}",
                "jmxremote.authenticate=false",
                "jmxremote.ssl=false",
            ],
            check=True,
            capture_output=True,
        )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self.segments: dict[str, int] = {}
        self.requests: dict[str, float] = {}
        self.bytes_in: dict[str, float] = {}

    def start(self) -> None:
        time.sleep(2)  # backends flush their statistics at most once a second
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")
            conn.execute("SELECT pg_stat_reset()")
            conn.execute("SELECT pg_stat_reset_shared('wal')")
        self.segments = self._segments()
        self.requests = self._jmx(_REQUEST_BEANS, "request")
        self.bytes_in = self._jmx(_BYTES_BEANS, "topic")

    def stop(self, apps: int) -> dict[str, Any]:
        time.sleep(1.5)
        per = 1.0 / max(apps, 1)
        stats: dict[str, Any] = {"apps": apps}
        with psycopg.connect(self.url, autocommit=True) as conn:
            stats["postgres"] = self._postgres(conn, per)
        segments = self._segments()
        stats["kafka_log_bytes_per_app"] = {
            topic: round((size - self.segments.get(topic, 0)) * per, 1)
            for topic, size in sorted(segments.items())
            if size != self.segments.get(topic, 0)
        }
        requests = self._jmx(_REQUEST_BEANS, "request")
        stats["kafka_requests_per_app"] = {
            name: round((count - self.requests.get(name, 0.0)) * per, 3)
            for name, count in sorted(requests.items())
            if count != self.requests.get(name, 0.0)
        }
        bytes_in = self._jmx(_BYTES_BEANS, "topic")
        stats["kafka_bytes_in_per_app"] = {
            name: round((count - self.bytes_in.get(name, 0.0)) * per, 1)
            for name, count in sorted(bytes_in.items())
            if count != self.bytes_in.get(name, 0.0)
        }
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(stats, indent=2) + "\n")
        _print(stats)
        return stats

    def _postgres(self, conn: psycopg.Connection[Any], per: float) -> dict[str, Any]:
        db = conn.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted "
            "FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        assert db is not None
        wal = conn.execute("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal").fetchone()
        assert wal is not None
        statements = conn.execute(
            "SELECT calls, rows, total_exec_time, wal_bytes, left(regexp_replace(query, "
            "'\\s+', ' ', 'g'), 160) FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "ORDER BY calls DESC LIMIT 40"
        ).fetchall()
        tables = conn.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, "
            "pg_total_relation_size(relid) FROM pg_stat_user_tables "
            "WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY relname"
        ).fetchall()
        unused = conn.execute(
            "SELECT i.relname, i.indexrelname, t.n_tup_ins, t.n_tup_upd - t.n_tup_hot_upd "
            "FROM pg_stat_user_indexes i JOIN pg_stat_user_tables t USING (relid) "
            "WHERE i.idx_scan = 0 AND t.n_tup_ins + t.n_tup_upd > 0 ORDER BY 1, 2"
        ).fetchall()
        return {
            "xact_commit_per_app": round(db[0] * per, 3),
            "xact_rollback_per_app": round(db[1] * per, 3),
            "tup_inserted_per_app": round(db[2] * per, 3),
            "tup_updated_per_app": round(db[3] * per, 3),
            "tup_deleted_per_app": round(db[4] * per, 3),
            "wal_records_per_app": round(wal[0] * per, 2),
            "wal_fpi_per_app": round(wal[1] * per, 3),
            "wal_bytes_per_app": round(float(wal[2]) * per, 1),
            "statements_per_app": round(sum(s[0] for s in statements) * per, 3),
            "statements": [
                {
                    "calls_per_app": round(s[0] * per, 3),
                    "rows_per_call": round(s[1] / max(s[0], 1), 2),
                    "ms_per_app": round(s[2] * per, 4),
                    "wal_bytes_per_app": round(float(s[3]) * per, 1),
                    "query": s[4],
                }
                for s in statements
            ],
            "tables_per_app": {
                t[0]: {
                    "ins": round(t[1] * per, 3),
                    "upd": round(t[2] * per, 3),
                    "hot_upd": round(t[3] * per, 3),
                    "del": round(t[4] * per, 3),
                    "size_mb": round(t[5] / 2**20, 1),
                }
                for t in tables
            },
            "indexes_never_scanned": [
                {"table": u[0], "index": u[1], "inserts_per_app": round((u[2] + u[3]) * per, 3)}
                for u in unused
            ],
        }

    def _segments(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for log in self.kafka_logs.glob("*-*/*.log"):
            topic = log.parent.name.rsplit("-", 1)[0]
            try:
                sizes[topic] = sizes.get(topic, 0) + log.stat().st_size
            except FileNotFoundError:
                continue
        return sizes

    def _jmx(self, beans: str, tag: str) -> dict[str, float]:
        """Count attribute of every bean matching `beans`, summed by the value of `tag`."""
        result = subprocess.run(
            [
                "java",
                "-cp",
                str(kafka_home() / "libs" / "*"),
                "org.apache.kafka.tools.JmxTool",
                "--jmx-url",
                f"service:jmx:rmi:///jndi/rmi://{LOOPBACK}:{self.jmx_port}/jmxrmi",
                "--object-name",
                beans,
                "--attributes",
                "Count",
                "--one-time",
                "true",
                "--report-format",
                "properties",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        counts: dict[str, float] = {}
        for line in result.stdout.splitlines():
            found = re.search(rf"{tag}=([^,:]+)\S*?:Count=([0-9.E+]+)", line)
            if found:
                counts[found[1]] = counts.get(found[1], 0.0) + float(found[2])
        return counts


def _print(stats: dict[str, Any]) -> None:
    pg = stats["postgres"]
    print("    per application:")
    for key in (
        "xact_commit_per_app",
        "statements_per_app",
        "wal_bytes_per_app",
        "wal_records_per_app",
        "wal_fpi_per_app",
        "tup_inserted_per_app",
        "tup_updated_per_app",
        "tup_deleted_per_app",
    ):
        print(f"      postgres {key} = {pg[key]}")
    for s in pg["statements"][:25]:
        print(
            f"      {s['calls_per_app']:7.3f} calls {s['rows_per_call']:6.2f} rows "
            f"{s['ms_per_app']:7.4f} ms {s['wal_bytes_per_app']:8.1f} WAL B  {s['query'][:110]}"
        )
    for table, t in pg["tables_per_app"].items():
        print(f"      table {table}: {t}")
    for index in pg["indexes_never_scanned"]:
        print(f"      never scanned: {index}")
    for name in ("kafka_log_bytes_per_app", "kafka_bytes_in_per_app", "kafka_requests_per_app"):
        print(f"      {name} = {stats[name]}")
