"""Offsets: which partitions this member owns, and which records' offsets may be stored."""

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
