"""The components the integration tier runs on are real, not stand-ins."""

from __future__ import annotations

import uuid

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from devstack.kafka import Kafka
from devstack.postgres import Postgres


def test_postgres_round_trips_sql_in_a_transaction(postgres: Postgres) -> None:
    with psycopg.connect(postgres.url) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO t VALUES (1, 'hello'), (2, 'world')")
        rows = conn.execute("SELECT note FROM t ORDER BY id").fetchall()
    assert version is not None
    assert version[0].startswith("15.")
    assert rows == [("hello",), ("world",)]


def test_kafka_topic_produce_consume_and_committed_offset(kafka: Kafka) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(kafka.connection().config())
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)

    producer = Producer({**kafka.connection().config(), "enable.idempotence": True})
    for i in range(10):
        producer.produce(topic, key=b"app-1", value=f"event-{i}".encode())
    assert producer.flush(30) == 0

    group = f"smoke-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        {
            **kafka.connection().config(),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        while len(values) < 10:
            msg = consumer.poll(30)
            assert msg is not None, f"only {len(values)} of 10 records arrived"
            assert msg.error() is None, msg.error()
            values.append(msg.value())
            consumer.commit(message=msg, asynchronous=False)
        # One key → one partition, in order.
        assert values == [f"event-{i}".encode() for i in range(10)]
        partition = msg.partition()
        committed = consumer.committed([TopicPartition(topic, partition)], timeout=30)
        assert committed[0].offset == 10
    finally:
        consumer.close()
