"""Which outbox lanes this instance publishes: per-application ordering with several instances.

Every outbox row carries a lane (its application id modulo 64). An instance publishes a lane
only while it holds that lane's session-level advisory lock, so at any moment one instance
sends a given application's events, in `seq` order. Instances announce themselves with a
membership lock and each aims for an equal share of lanes: a newcomer's arrival makes the
others release their surplus between batches (never with records in flight), and an instance
that dies loses its locks with its connection, so the others take its lanes over.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any

import psycopg

from prequal.db.tables import OUTBOX_LANES

log = logging.getLogger(__name__)

LANE_LOCK_CLASS = 7_302_010
MEMBER_LOCK_CLASS = 7_302_011


def fair_share(members: int, lanes: int = OUTBOX_LANES) -> int:
    return math.ceil(lanes / max(members, 1))


class LaneLeases:
    """Holds lane locks on one autocommit connection (the same one that LISTENs)."""

    def __init__(self, conn: psycopg.Connection[Any], lanes: int = OUTBOX_LANES) -> None:
        self.conn = conn
        self.lanes = lanes
        self.owned: set[int] = set()
        conn.execute("SELECT pg_advisory_lock(%s, pg_backend_pid())", (MEMBER_LOCK_CLASS,))

    def members(self) -> int:
        row = self.conn.execute(
            "SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s AND objsubid = 2 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (MEMBER_LOCK_CLASS,),
        ).fetchone()
        return int(row[0]) if row else 1

    def rebalance(self) -> set[int]:
        """Releases surplus lanes or takes free ones, towards an equal share; returns the set."""
        share = fair_share(self.members(), self.lanes)
        if len(self.owned) > share:
            surplus = sorted(self.owned)[share:]
            for lane in surplus:
                self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LANE_LOCK_CLASS, lane))
                self.owned.discard(lane)
            log.info("released %d lanes, now own %d", len(surplus), len(self.owned))
        elif len(self.owned) < share:
            free = [lane for lane in range(self.lanes) if lane not in self.owned]
            random.shuffle(free)  # newcomers do not all race for lane 0
            taken = 0
            for lane in free:
                if len(self.owned) >= share:
                    break
                row = self.conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (LANE_LOCK_CLASS, lane)
                ).fetchone()
                if row and row[0]:
                    self.owned.add(lane)
                    taken += 1
            if taken:
                log.info("took %d lanes, now own %d", taken, len(self.owned))
        return self.owned
