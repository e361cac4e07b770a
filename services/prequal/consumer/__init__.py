"""The one consumer runtime: Kafka records in, database effects out, exactly once per event id.

Both consumer services run this loop with their own handler. A handler turns a record into a
command (`decode`, no I/O: this is where bad JSON, an unknown `ce_type`, missing fields or an
undecryptable PAN show up) and applies the command inside a database transaction (`apply`).
The runtime owns everything else, one module per concept:

- Inbox: `processed_messages` gets (consumer group, `ce_id`) in the same transaction as the
  handler's effects; an event seen before is a duplicate and does nothing. Records are applied
  in batches, one transaction per batch, so one commit (one WAL flush) serves many records.
  The batch first runs on the fast path: one statement claims every event id, then each
  record's effects, with no savepoint. If any record fails, that transaction is rolled back
  and the batch runs again on the careful path, a savepoint and an inbox insert per record,
  so a failing record rolls back only itself.
- Offsets (`offsets`): stored only for settled records, those whose effects committed or
  whose dead letter Kafka confirmed, and per partition only up to the first unsettled one;
  librdkafka commits stored offsets in the background (and at revocation and shutdown). A
  crash at any moment re-delivers at most the batch in hand, which the inbox turns into
  duplicates.
- Failures: a poison record goes to `<topic>_dlq` at once. A record failing for its own
  reasons (a bug, a constraint, a lost optimistic-lock race) is retried `max_attempts` times
  with backoff, then dead-lettered. An outage (PostgreSQL unreachable, the DLQ produce not
  confirmed) is not the record's fault: the assignment is paused and the same records are
  retried with capped backoff until the outage ends, never dead-lettered for it. At most one dead
  letter per event id and group (`dead_letters`): it is recorded in PostgreSQL, with its
  reason on the application, once Kafka confirmed it.
- Shutdown: `stop()` (SIGTERM) lets the transaction in hand finish and stores the offsets of
  what is settled. Records waiting out a retry backoff or an outage stay unsettled: the next
  owner starts them afresh, never dead-lettered for the stop.
"""

from prequal.consumer.batch import CLAIM_SQL, INBOX_SQL
from prequal.consumer.dead_letters import DeadLetterWriter
from prequal.consumer.handler import (
    AfterCommit,
    BatchHandler,
    Handler,
    OutageError,
    PoisonRecordError,
)
from prequal.consumer.metrics import ConsumerMetrics
from prequal.consumer.retry import RetryPolicy
from prequal.consumer.runtime import ConsumerRuntime

__all__ = [
    "CLAIM_SQL",
    "INBOX_SQL",
    "AfterCommit",
    "BatchHandler",
    "ConsumerMetrics",
    "ConsumerRuntime",
    "DeadLetterWriter",
    "Handler",
    "OutageError",
    "PoisonRecordError",
    "RetryPolicy",
]
