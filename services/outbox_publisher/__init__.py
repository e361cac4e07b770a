"""outbox-publisher: moves committed outbox rows to Kafka, in order per application.

Layers: `main` (entrypoint, composition root) → `publisher` (the loop) → `store` (SQL),
`lanes` (which rows this instance may publish), `breaker` (backing off when Kafka is down);
Kafka only through prequal.kafka.
"""
