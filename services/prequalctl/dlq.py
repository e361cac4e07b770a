"""`prequalctl dlq list|show|replay`: inspect dead-lettered records and send them back.

Nothing here prints a PAN: payloads show `pan_encrypted` only as its length, and every line
passes the same redaction as the logs. A replay produces the record to its original topic with
its original key, value and CloudEvents headers (so the same `ce_id`: a record that was in fact
processed meanwhile becomes a duplicate, never a second effect). Kafka topics are append-only:
a replayed record stays in the DLQ; `list` shows what is there, not what is still broken.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from prequal import dlq
from prequal.kafka import InboundRecord, KafkaUnavailableError, create_producer, read_topic
from prequal.logging import redact
from prequal.settings import KafkaSettings, load_settings

SENSITIVE_FIELDS = ("pan_encrypted", "pan_number", "pan")


def register(commands: Any) -> None:
    group = commands.add_parser(
        "dlq",
        help="List, inspect and replay dead-lettered records",
        description="Dead-letter topics (<topic>_dlq) of the consumers. Reads "
        "KAFKA_BOOTSTRAP_SERVERS, the KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* / "
        "KAFKA_SSL_CA_LOCATION settings, TOPIC_APPLICATIONS_SUBMITTED and TOPIC_CREDIT_REPORTS.",
    )
    group.set_defaults(group_parser=group)
    verbs = group.add_subparsers(title="Available Commands", metavar="<command>")

    listing = verbs.add_parser("list", help="One line per dead-lettered record")
    _topic_option(listing)
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_list)

    show = verbs.add_parser("show", help="Headers and payload of one record (PAN never shown)")
    _topic_option(show, required=True)
    show.add_argument("--partition", type=int, default=0)
    show.add_argument("--offset", type=int, required=True, help="offset in the DLQ topic")
    show.set_defaults(handler=_show)

    replay = verbs.add_parser(
        "replay",
        help="Produce records back to their original topic",
        description="Fix the cause first (a key, a configuration, a release), then replay. "
        "Replaying a record that was processed meanwhile is harmless: the inbox sees its ce_id.",
    )
    _topic_option(replay, required=True)
    replay.add_argument("--partition", type=int, default=0)
    chosen = replay.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--offset", type=int, action="append", help="DLQ offset (repeatable)")
    chosen.add_argument("--all", action="store_true", help="every record of the DLQ topic")
    replay.add_argument("--dry-run", action="store_true", help="say what would be replayed")
    replay.set_defaults(handler=_replay)


def _topic_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument(
        "--topic",
        required=required,
        help="DLQ topic, or the consumed topic whose DLQ to use"
        + ("" if required else " (default: both consumers' DLQs)"),
    )


def _settings() -> KafkaSettings:
    return load_settings(KafkaSettings)


def _dlq_topics(settings: KafkaSettings, topic: str | None) -> list[str]:
    if topic is None:
        return [
            dlq.dlq_topic(settings.topic_applications_submitted),
            dlq.dlq_topic(settings.topic_credit_reports),
        ]
    return [topic if topic.endswith(dlq.DLQ_SUFFIX) else dlq.dlq_topic(topic)]


def summary(topic: str, record: InboundRecord) -> dict[str, Any]:
    """What `list` shows of one record: where it came from, what it is, why it failed."""
    return {
        "dlq_topic": topic,
        "partition": record.partition,
        "offset": record.offset,
        "original": f"{record.header(dlq.ORIGINAL_TOPIC)}[{record.header(dlq.ORIGINAL_PARTITION)}]"
        f"@{record.header(dlq.ORIGINAL_OFFSET)}",
        "key": record.key.decode("utf-8", "replace") if record.key else None,
        "ce_type": record.header("ce_type"),
        "ce_id": record.header("ce_id"),
        "group": record.header(dlq.CONSUMER_GROUP),
        "attempts": record.header(dlq.ATTEMPTS),
        "error_class": record.header(dlq.ERROR_CLASS),
        "error": record.header(dlq.ERROR_MESSAGE),
        "failed_at": record.header(dlq.FAILED_AT),
    }


def masked_payload(value: bytes | None) -> Any:
    """The JSON payload with PAN-bearing fields replaced by their length; raw text otherwise."""
    text = (value or b"").decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return text if len(text) <= 2000 else text[:2000] + "…"
    if isinstance(payload, dict):
        for name in SENSITIVE_FIELDS:
            if name in payload:
                payload[name] = f"<hidden: {len(str(payload[name]))} characters>"
    return payload


def _out(text: str) -> None:
    print(redact(text))


def _list(args: argparse.Namespace) -> int:
    settings = _settings()
    rows: list[dict[str, Any]] = []
    try:
        for topic in _dlq_topics(settings, args.topic):
            rows.extend(summary(topic, r) for r in read_topic(settings.kafka_connection(), topic))
    except KafkaUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.output == "json":
        _out(json.dumps(rows, indent=2))
        return 0
    if not rows:
        _out("no dead-lettered records")
        return 0
    columns = ("dlq_topic", "partition", "offset", "key", "ce_type", "attempts", "error_class")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    _out("  ".join(c.upper().ljust(widths[c]) for c in columns) + "  ERROR")
    for row in rows:
        error = str(row["error"] or "").splitlines()[0][:80] if row["error"] else ""
        _out("  ".join(str(row[c]).ljust(widths[c]) for c in columns) + "  " + error)
    return 0


def _find(settings: KafkaSettings, topic: str, partition: int) -> tuple[str, list[InboundRecord]]:
    name = _dlq_topics(settings, topic)[0]
    records = read_topic(settings.kafka_connection(), name)
    return name, [r for r in records if r.partition == partition]


def _show(args: argparse.Namespace) -> int:
    settings = _settings()
    try:
        name, records = _find(settings, args.topic, args.partition)
    except KafkaUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    found = [r for r in records if r.offset == args.offset]
    if not found:
        print(f"error: no record at {name}[{args.partition}]@{args.offset}", file=sys.stderr)
        return 1
    record = found[0]
    shown = summary(name, record)
    shown["headers"] = {
        k: (v.decode("utf-8", "replace") if v is not None else None) for k, v in record.headers
    }
    shown["payload"] = masked_payload(record.value)
    _out(json.dumps(shown, indent=2))
    return 0


def _replay(args: argparse.Namespace) -> int:
    settings = _settings()
    try:
        name, records = _find(settings, args.topic, args.partition)
    except KafkaUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.all:
        wanted = set(args.offset)
        records = [r for r in records if r.offset in wanted]
        missing = wanted - {r.offset for r in records}
        if missing:
            print(f"error: no records at offsets {sorted(missing)} of {name}", file=sys.stderr)
            return 1
    targets = [(r, r.header(dlq.ORIGINAL_TOPIC)) for r in records]
    unknown = [r.offset for r, target in targets if not target]
    if unknown:
        print(f"error: records {unknown} do not name their original topic", file=sys.stderr)
        return 1
    if args.dry_run:
        for record, target in targets:
            _out(f"would replay {name}[{record.partition}]@{record.offset} to {target}")
        return 0
    return _produce(settings, name, targets)


def _produce(
    settings: KafkaSettings, name: str, targets: list[tuple[InboundRecord, str | None]]
) -> int:
    producer = create_producer(settings.kafka_connection(), "prequalctl-dlq-replay")
    errors: list[str] = []
    for record, target in targets:
        assert target is not None
        producer.produce(
            target,
            key=record.key or b"",
            value=record.value or b"",
            headers=list(
                dlq.replay_headers(record.headers, f"{name}[{record.partition}]@{record.offset}")
            ),
            on_delivery=lambda err: errors.append(err) if err else None,
        )
    left = producer.flush(30)
    if left or errors:
        print(f"error: {left} records unconfirmed; {errors[:3]}", file=sys.stderr)
        return 1
    _out(f"replayed {len(targets)} record(s) from {name}")
    return 0
