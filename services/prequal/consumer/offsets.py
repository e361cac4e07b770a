"""Offsets: which partitions this member owns, and which records' offsets may be stored.

An offset is stored only for a record that is settled: its effects committed (processed, or a
duplicate the inbox recognised) or its dead letter confirmed by Kafka. Storing offset N of a
partition also gives up every record before N, so what is stored is each partition's settled
prefix: the records up to, not including, the first one still unsettled. Ownership alone is not
enough: a partition revoked during a wait and assigned back before the batch ends is owned
again, yet the records dropped while it was away were never applied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from prequal.kafka import InboundRecord

log = logging.getLogger(__name__)

Partition = tuple[str, int]


@dataclass
class Ownership:
    """Follows the rebalance callbacks: a revoked partition's records are another member's."""

    _revoked: set[Partition] = field(default_factory=set)

    def assigned(self, partitions: list[Partition]) -> None:
        self._revoked.difference_update(partitions)
        log.info("partitions assigned: %s", partitions)

    def lost(self, partitions: list[Partition]) -> None:
        self._revoked.update(partitions)
        log.info("partitions revoked: %s", partitions)

    def holds(self, partition: Partition) -> bool:
        return partition not in self._revoked

    def owns(self, record: InboundRecord) -> bool:
        return self.holds((record.topic, record.partition))


def settled_prefix(
    records: list[InboundRecord], settled: list[InboundRecord]
) -> list[InboundRecord]:
    """Per partition, the records (in consumed order) before the first unsettled one."""
    done = {(r.topic, r.partition, r.offset) for r in settled}
    blocked: set[Partition] = set()
    prefix: list[InboundRecord] = []
    for record in records:
        where = (record.topic, record.partition)
        if where in blocked:
            continue
        if (record.topic, record.partition, record.offset) in done:
            prefix.append(record)
        else:
            blocked.add(where)
    return prefix
