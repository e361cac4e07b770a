"""Per-endpoint concurrency slots, shared by every dispatcher process (migration 0015).

An attempt at an endpoint runs only while it holds one of the endpoint's slots, numbered 0 to
`endpoint_concurrency` - 1, each a row of `webhook_endpoint_slots` keyed by (endpoint, slot):
the primary key admits one holder per slot, whichever replica asks, so the endpoint never has
more than `endpoint_concurrency` attempts in flight from all the replicas together.

- **Take** (in CLAIM_SQL, the statement that already claimed due deliveries, so no statement of
  its own): for each endpoint, the due deliveries are paired with the slots free in the
  statement's snapshot, and each pair is inserted `ON CONFLICT DO UPDATE … WHERE expires_at <=
  now()`. A slot another replica took meanwhile conflicts, is locked and re-read, is not
  expired, so the row is not returned and its delivery is not claimed (it stays parked, due, for
  the next claim). Inserts go in (endpoint, slot) order, so two replicas never wait on each
  other in a cycle.
- **Give back** (a CTE of each outcome's statement): the slot's expiry is set to
  `-infinity`, only while this delivery still holds it. The row stays: an endpoint has at most
  `endpoint_concurrency` of them, and taking and giving back are then updates of columns no
  index covers (HOT, no index entry written or left dead), not an insert and a delete.
- **Lease.** A slot expires with the delivery row's lease (timeout + margin), so a dispatcher
  killed mid-attempt blocks at most that long. An attempt still running at half its lease
  renews the slot and the row's lease together (RENEW_SQL, one statement for every such
  attempt of the process): the bound therefore holds for attempts longer than the lease too,
  unless the renewing process cannot reach PostgreSQL for the rest of the lease.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

CLAIM_SQL = """
WITH held AS (
    SELECT endpoint_id, slot FROM webhook_endpoint_slots WHERE expires_at > now()
), ring AS (
    -- The enabled endpoints in id order from `start`, which the dispatcher draws at random
    -- for each claim, round to the ones before it: with more endpoints due than free
    -- workers, each claim begins somewhere else, so none is passed over claim after claim.
    -- Two ordered index scans, walked one after the other: the LIMIT still stops the walk.
    (SELECT id FROM webhook_endpoints WHERE enabled AND id >= %(start)s ORDER BY id)
    UNION ALL
    (SELECT id FROM webhook_endpoints WHERE enabled AND id < %(start)s ORDER BY id)
), picked AS (
    -- A nested loop keeps the ring's order; each endpoint's room is its free slots.
    SELECT w.id, w.endpoint_id, w.next_attempt_at
    FROM ring e
    CROSS JOIN LATERAL (
        SELECT id, endpoint_id, next_attempt_at FROM webhook_deliveries
        WHERE endpoint_id = e.id AND status = 'PENDING' AND next_attempt_at <= now()
        ORDER BY next_attempt_at
        LIMIT greatest(
            %(per_endpoint)s - (SELECT count(*) FROM held h WHERE h.endpoint_id = e.id), 0
        )
        FOR UPDATE SKIP LOCKED
    ) w
    LIMIT %(free)s
), due AS (
    -- Numbered apart from `picked`, so its LIMIT stops the walk over the endpoints early.
    SELECT id, endpoint_id,
        row_number() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at, id) AS n
    FROM picked
), open_slots AS (
    SELECT ep.endpoint_id, s.slot,
        row_number() OVER (PARTITION BY ep.endpoint_id ORDER BY s.slot) AS n
    FROM (SELECT DISTINCT endpoint_id FROM due) ep
    CROSS JOIN generate_series(0, %(per_endpoint)s - 1) AS s(slot)
    WHERE NOT EXISTS (
        SELECT 1 FROM held h WHERE h.endpoint_id = ep.endpoint_id AND h.slot = s.slot
    )
), taken AS (
    INSERT INTO webhook_endpoint_slots AS t (endpoint_id, slot, delivery_id, expires_at)
    SELECT due.endpoint_id, o.slot, due.id, now() + make_interval(secs => %(lease)s)
    FROM due JOIN open_slots o ON o.endpoint_id = due.endpoint_id AND o.n = due.n
    ORDER BY due.endpoint_id, o.slot
    ON CONFLICT (endpoint_id, slot) DO UPDATE
    SET delivery_id = excluded.delivery_id, expires_at = excluded.expires_at
    WHERE t.expires_at <= now()
    RETURNING t.slot, t.delivery_id
)
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => %(lease)s)
FROM taken, webhook_endpoints e
WHERE d.id = taken.delivery_id AND e.id = d.endpoint_id
RETURNING d.id, d.endpoint_id, d.event_id, d.payload::text, d.attempts, e.url, e.secret,
    e.sealed_secret, taken.slot
"""

# Each outcome's statement gives the slot back (the CTE), only while this delivery holds it.
DELIVERED_SQL = """
WITH released AS (
    UPDATE webhook_endpoint_slots SET expires_at = '-infinity'
    WHERE endpoint_id = %(endpoint)s AND slot = %(slot)s AND delivery_id = %(delivery)s
)
UPDATE webhook_deliveries SET status = 'DELIVERED', delivered_at = now(), last_error = NULL
WHERE id = %(delivery)s AND status = 'PENDING'
"""
RETRY_SQL = """
WITH released AS (
    UPDATE webhook_endpoint_slots SET expires_at = '-infinity'
    WHERE endpoint_id = %(endpoint)s AND slot = %(slot)s AND delivery_id = %(delivery)s
)
UPDATE webhook_deliveries
SET next_attempt_at = now() + make_interval(secs => %(delay)s), last_error = %(error)s
WHERE id = %(delivery)s AND status = 'PENDING'
"""
DEAD_SQL = """
WITH released AS (
    UPDATE webhook_endpoint_slots SET expires_at = '-infinity'
    WHERE endpoint_id = %(endpoint)s AND slot = %(slot)s AND delivery_id = %(delivery)s
)
UPDATE webhook_deliveries SET status = 'DEAD', last_error = %(error)s
WHERE id = %(delivery)s AND status = 'PENDING'
"""

# Locks this process's slots in (endpoint, slot) order, as the claim takes them; a slot that
# another holder has taken since (its lease ran out) is not renewed, nor is its delivery.
RENEW_SQL = """
WITH mine AS (
    SELECT s.endpoint_id, s.slot, s.delivery_id FROM webhook_endpoint_slots s
    JOIN unnest(%(endpoints)s::uuid[], %(slots)s::smallint[], %(deliveries)s::uuid[])
        AS m(endpoint_id, slot, delivery_id)
        ON s.endpoint_id = m.endpoint_id AND s.slot = m.slot AND s.delivery_id = m.delivery_id
    ORDER BY s.endpoint_id, s.slot
    FOR UPDATE OF s
), renewed AS (
    UPDATE webhook_endpoint_slots s SET expires_at = now() + make_interval(secs => %(lease)s)
    FROM mine WHERE s.endpoint_id = mine.endpoint_id AND s.slot = mine.slot
    RETURNING s.delivery_id
)
UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => %(lease)s)
FROM renewed WHERE d.id = renewed.delivery_id AND d.status = 'PENDING'
RETURNING d.id
"""


@dataclass
class Held:
    """A slot this process holds for an attempt in flight, and when its lease was last set."""

    endpoint_id: uuid.UUID
    slot: int
    leased_at: float  # time.monotonic()


def outcome_params(
    delivery: uuid.UUID, endpoint: uuid.UUID, slot: int, **fields: object
) -> dict[str, object]:
    """Parameters of an outcome's statement: the delivery, the slot it gives back, `fields`."""
    return {"delivery": delivery, "endpoint": endpoint, "slot": slot, **fields}


def renew_params(held: dict[uuid.UUID, Held], lease: float) -> dict[str, object]:
    return {
        "endpoints": [h.endpoint_id for h in held.values()],
        "slots": [h.slot for h in held.values()],
        "deliveries": list(held),
        "lease": lease,
    }
