"""What a service gives the consumer runtime: a handler, and the errors that steer the runtime."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import psycopg

from prequal.audit import AuditEntry
from prequal.events import CloudEventAttributes
from prequal.kafka import InboundRecord

C = TypeVar("C")
C_contra = TypeVar("C_contra", contravariant=True)
AfterCommit = Callable[[], None]
"""What a handler wants done once its effects are committed (metrics, logs)."""


class PoisonRecordError(Exception):
    """The record can never succeed as it is: it goes to the DLQ at once, without retries.

    `audit` is the row that records the failure (a decryption that failed): the runtime writes
    it in the batch's transaction after rolling back the record's own effects, so the attempt
    is on file even though nothing else of it is.
    """

    def __init__(self, message: str, *, audit: AuditEntry | None = None) -> None:
        super().__init__(message)
        self.audit = audit


class OutageError(Exception):
    """PostgreSQL or Kafka is unreachable: retry the same records later, blame none of them."""


class Handler(Protocol[C]):
    """A service's part of consuming: decode a record, apply it in a transaction."""

    def decode(self, event: CloudEventAttributes, record: InboundRecord) -> C:
        """The command for a record; raise PoisonRecordError when it can never succeed."""
        ...

    def apply(self, conn: psycopg.Connection[Any], command: C) -> AfterCommit | None:
        """The command's database effects, inside the runtime's transaction."""
        ...


@runtime_checkable
class BatchHandler(Protocol[C_contra]):
    """A handler that can also apply a whole batch's commands at once, with fewer statements.

    The runtime uses it on the fast path only (no savepoints): the effects must be exactly those
    of `apply` called on each command in order, and any exception gives the batch to the
    careful path, which calls `apply` record by record.
    """

    def apply_batch(
        self, conn: psycopg.Connection[Any], commands: Sequence[C_contra]
    ) -> list[AfterCommit]:
        """Every command's database effects, inside the runtime's transaction."""
        ...
