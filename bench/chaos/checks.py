"""What must hold after a chaos run, read from PostgreSQL, Kafka and the logs (docs/chaos.md).

- every accepted application (`202`) ends in exactly one final status, or PENDING with a
  recorded dead letter (`processing_issue_*`, the API's `processing_issue`) and its reason;
- no decision applied twice: one credit-service decrypt audit row per application, `version`
  2 for a decided one (1 at submission, +1 by the one decision), one event id per
  application per topic;
- the only `5xx` answers are `503`s inside a database outage window (plus a stated grace);
- within the drain bound: no unpublished outbox row, and every consumer group's lag is 0;
- per-application event order: each application's records on one partition of each topic, and
  its credit report produced after its submission;
- no plaintext PAN the run generated in a `pg_dump`, in any record of any topic, or in any file
  `*.log` under the run directory.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from bench.chaos.faults import Window, pg_dump_binary
from bench.chaos.load import Outcome, Response
from bench.chaos.pipeline import PARTITIONS
from bench.chaos.platform import DATABASE, GROUPS, ChaosPlatform
from bench.chaos.schedule import OPERATOR
from confluent_kafka import Consumer, TopicPartition
from tests import leakscan
from tests.kafka_reader import Record, all_topics, dump_topic

from devstack.net import LOOPBACK
from devstack.postgres import SUPERUSER

__all__ = ["Record", "all_topics", "dump_topic"]  # run.py reads topics through this module

FINAL = ("PRE_APPROVED", "REJECTED", "MANUAL_REVIEW")
# A 503 up to this long after a database outage ended is still the outage's: pools reconnect.
OUTAGE_GRACE_S = 15.0


def outbox_pending(platform: ChaosPlatform) -> int:
    with psycopg.connect(platform.database_url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*) FROM outbox_events WHERE published_at IS NULL"
        ).fetchone()
    return int(row[0]) if row else -1


def pending_without_reason(platform: ChaosPlatform, ids: list[str]) -> int:
    with psycopg.connect(platform.database_url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*) FROM unnest(%s::uuid[]) AS i(id) "
            "LEFT JOIN applications a ON a.id = i.id "
            "WHERE a.id IS NULL OR (a.status = 'PENDING' AND a.processing_issue_code IS NULL)",
            (ids,),
        ).fetchone()
    return int(row[0]) if row else -1


def group_lag(platform: ChaosPlatform) -> dict[str, int]:
    """Records each consumer group has not committed past, summed over its topic's partitions."""
    lag: dict[str, int] = {}
    for topic, group in GROUPS.items():
        consumer = Consumer(
            {
                **platform.connection.config(),
                "group.id": group,
                "enable.auto.commit": False,
            }
        )
        try:
            parts = [TopicPartition(platform.topic(topic), p) for p in range(PARTITIONS)]
            total = 0
            for committed in consumer.committed(parts, timeout=10):
                low, high = consumer.get_watermark_offsets(committed, timeout=10)
                total += high - (committed.offset if committed.offset >= 0 else low)
            lag[group] = total
        finally:
            consumer.close()
    return lag


def drain(platform: ChaosPlatform, ids: list[str], bound_s: float) -> tuple[float, dict[str, int]]:
    """Waits until nothing is in flight; returns the seconds it took (the bound if it never got
    there) and what was still in flight at the end."""
    started = time.monotonic()
    left: dict[str, int] = {}
    while time.monotonic() - started < bound_s:
        platform.supervisor.tick()
        try:
            left = {
                "pending_without_reason": pending_without_reason(platform, ids),
                "outbox_pending": outbox_pending(platform),
                **{f"lag_{g}": n for g, n in group_lag(platform).items()},
            }
        except (psycopg.Error, RuntimeError) as exc:
            left = {"unreachable": 1}
            print(f"    drain: not answering yet ({type(exc).__name__})", flush=True)
        if left and not any(left.values()):
            return time.monotonic() - started, left
        time.sleep(2.0)
    return bound_s, left


@dataclass
class Rows:
    """What PostgreSQL holds about the run's applications, by id."""

    status: dict[str, str]
    version: dict[str, int]
    issue: dict[str, str]
    final_at: dict[str, float]
    credit_audits: Counter[str]
    dead_letter_rows: int


def read_rows(platform: ChaosPlatform, ids: list[str]) -> Rows:
    with psycopg.connect(platform.database_url) as conn:
        apps = conn.execute(
            "SELECT id::text, status, version, coalesce(processing_issue_code, ''), "
            "extract(epoch FROM updated_at)::float8 FROM applications WHERE id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()
        audits = conn.execute(
            "SELECT application_id::text, count(*) FROM audit_log "
            "WHERE actor = 'credit-service' AND action = 'decrypt' "
            "AND application_id = ANY(%s::uuid[]) GROUP BY 1",
            (ids,),
        ).fetchall()
        letters = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    return Rows(
        status={i: s for i, s, _, _, _ in apps},
        version={i: v for i, _, v, _, _ in apps},
        issue={i: c for i, _, _, c, _ in apps if c},
        final_at={i: t for i, s, _, _, t in apps if s in FINAL},
        credit_audits=Counter(dict(audits)),
        dead_letter_rows=int(letters[0]) if letters else 0,
    )


def leaked(pans: set[bytes], blobs: Iterable[bytes]) -> int:
    """How many of the run's PANs appear in `blobs`, as text or hex- or base64-encoded (the
    suite's leak scan, tests/leakscan.py)."""
    found: set[bytes] = set()
    for blob in blobs:
        found.update(
            value for _, kind, _, value in leakscan.matches(blob) if kind == leakscan.KINDS["pan"]
        )
    return len(found & pans)


def pg_dump(platform: ChaosPlatform) -> bytes:
    assert platform.postgres
    result = subprocess.run(
        [
            str(pg_dump_binary()),
            *("-h", LOOPBACK, "-p", str(platform.postgres.port), "-U", SUPERUSER, DATABASE),
        ],
        capture_output=True,
        check=True,
    )
    return result.stdout


def log_files(run_dir: Path) -> Iterator[bytes]:
    for path in sorted(run_dir.rglob("*.log")):
        if path.is_file():
            yield path.read_bytes()


def unexpected_5xx(responses: list[Response], windows: list[Window]) -> list[Response]:
    outages = [(w.start, (w.end or time.time()) + OUTAGE_GRACE_S) for w in windows if w.outage]
    return [
        r
        for r in responses
        if r.status >= 500
        and not (r.status == 503 and any(start <= r.at <= end for start, end in outages))
    ]


def order_violations(submitted: list[Record], reports: list[Record]) -> tuple[int, int]:
    """(applications whose records broke order, applications with more than one event id on
    one topic)."""
    broken = 0
    duplicated = 0
    # Per topic (submitted, then reports): each application's first record.
    first: list[dict[str, Record]] = [{}, {}]
    for records, firsts in zip((submitted, reports), first, strict=True):
        partitions: dict[bytes, set[int]] = defaultdict(set)
        events: dict[bytes, set[str]] = defaultdict(set)
        for record in records:
            partitions[record.key].add(record.partition)
            events[record.key].add(record.event_id)
            seen = firsts.get(record.key.decode())
            if seen is None or record.offset < seen.offset:
                firsts[record.key.decode()] = record
        broken += sum(1 for parts in partitions.values() if len(parts) > 1)
        duplicated += sum(1 for ids in events.values() if len(ids) > 1)
    for app, report in first[1].items():
        submission = first[0].get(app)
        if submission is None or report.timestamp_ms < submission.timestamp_ms:
            broken += 1
    return broken, duplicated


def recovery(
    windows: list[Window], outcomes: list[Outcome], final_at: dict[str, float]
) -> dict[str, float]:
    """Per fault kind, the longest time from a fault's end until an application accepted after
    that moment was decided (the operator's kills aside)."""
    longest: dict[str, float] = {}
    accepted = sorted((o.accepted_at, o.application_id) for o in outcomes if o.accepted_at)
    for window in windows:
        if window.end is None or window.skipped or window.failed:
            continue
        if window.target == OPERATOR:  # not on the applications' path: nothing to recover
            continue
        after = [final_at[i] for at, i in accepted if at >= window.end and i in final_at]
        if after:
            seconds = round(min(after) - window.end, 1)
            longest[window.kind] = max(longest.get(window.kind, 0.0), seconds)
    return longest
