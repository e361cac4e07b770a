"""Sending parked deliveries: claimed with a lease, POSTed signed, recorded, retried later.

- **Claim.** One statement picks due `PENDING` rows endpoint by endpoint, at most as many per
  endpoint as it has free slots in this process (`endpoint_concurrency` minus its attempts in
  flight) and at most as many in all as there are idle workers (`FOR UPDATE SKIP LOCKED`, so
  replicas never claim the same row). Claiming counts the attempt and moves `next_attempt_at`
  a lease ahead (timeout + 30 s): if this process dies mid-attempt, the row is due again then.
- **Send.** A worker thread POSTs the Standard Webhooks body with `webhook-id` (the event id,
  the same on every retry), `webhook-timestamp` and `webhook-signature`, with a timeout for
  the whole attempt. 2xx is delivered; anything else (a status, a timeout, a refused
  connection) is a failed attempt.
- **Record.** Delivered; or parked again with exponential backoff and the error; or, after
  `max_attempts`, `DEAD` (kept, replayable with `prequalctl webhooks replay`).

A slow endpoint therefore holds at most `endpoint_concurrency` workers for at most the timeout
each; other endpoints keep the rest, and neither the consumer nor decisions wait for any of it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter as Tally
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from prequal.webhooks import signed_headers

log = logging.getLogger(__name__)

LEASE_MARGIN_SECONDS = 30.0

CLAIM_SQL = """
WITH busy AS (
    SELECT * FROM unnest(%(busy_ids)s::uuid[], %(busy_counts)s::int[]) AS b(endpoint_id, n)
), claimed AS (
    SELECT w.id FROM webhook_endpoints e
    LEFT JOIN busy ON busy.endpoint_id = e.id
    CROSS JOIN LATERAL (
        SELECT id FROM webhook_deliveries
        WHERE endpoint_id = e.id AND status = 'PENDING' AND next_attempt_at <= now()
        ORDER BY next_attempt_at
        LIMIT greatest(%(per_endpoint)s - coalesce(busy.n, 0), 0)
        FOR UPDATE SKIP LOCKED
    ) w
    WHERE e.enabled
    LIMIT %(free)s
)
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => %(lease)s)
FROM claimed c, webhook_endpoints e
WHERE d.id = c.id AND e.id = d.endpoint_id
RETURNING d.id, d.endpoint_id, d.event_id, d.payload::text, d.attempts, e.url, e.secret
"""
DELIVERED_SQL = (
    "UPDATE webhook_deliveries SET status = 'DELIVERED', delivered_at = now(), "
    "last_error = NULL WHERE id = %s AND status = 'PENDING'"
)
RETRY_SQL = (
    "UPDATE webhook_deliveries SET next_attempt_at = now() + make_interval(secs => %s), "
    "last_error = %s WHERE id = %s AND status = 'PENDING'"
)
DEAD_SQL = (
    "UPDATE webhook_deliveries SET status = 'DEAD', last_error = %s "
    "WHERE id = %s AND status = 'PENDING'"
)


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout: float = 5.0
    max_attempts: int = 8
    backoff_initial: float = 2.0
    backoff_max: float = 600.0
    workers: int = 8
    endpoint_concurrency: int = 2
    poll_interval: float = 1.0

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after `attempts` failed ones."""
        base: float = min(self.backoff_max, self.backoff_initial * 2.0 ** (attempts - 1))
        return base * (1 + random.random() / 10)  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    body: str
    attempts: int
    url: str
    secret: str


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "webhook_delivery_attempts",
            "Delivery attempts by outcome: delivered, retry (parked with backoff) or dead",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("delivered", "retry", "dead"):
            self.attempts.labels(outcome)
        self.seconds = Histogram(
            "webhook_delivery_seconds",
            "Duration of one delivery attempt, until the answer or the timeout",
            registry=registry,
        )
        self.in_flight = Gauge(
            "webhook_deliveries_in_flight", "Attempts under way in this process", registry=registry
        )


class Deliverer:
    """Runs in its own thread beside the consumer: claims, sends through a worker pool, records."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        policy: DeliveryPolicy,
        metrics: DeliveryMetrics,
        wake: threading.Event | None = None,
    ) -> None:
        self.connect = connect
        self.policy = policy
        self.metrics = metrics
        self.wake = wake or threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: Tally[uuid.UUID] = Tally()
        self._conn: psycopg.Connection[Any] | None = None
        self._http = httpx.Client(timeout=policy.timeout, follow_redirects=False)

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()

    def run(self) -> None:
        with ThreadPoolExecutor(self.policy.workers, thread_name_prefix="webhook") as pool:
            while not self._stopping.is_set():
                self.wake.clear()
                for claimed in self._claim():
                    pool.submit(self._attempt, claimed)
                self.wake.wait(self.policy.poll_interval)
        self._http.close()
        self._close()

    def _claim(self) -> list[Claimed]:
        with self._lock:
            free = self.policy.workers - sum(self._in_flight.values())
            busy = {k: v for k, v in self._in_flight.items() if v}
        if free <= 0:
            return []
        params = {
            "busy_ids": list(busy),
            "busy_counts": list(busy.values()),
            "per_endpoint": self.policy.endpoint_concurrency,
            "free": free,
            "lease": self.policy.timeout + LEASE_MARGIN_SECONDS,
        }
        rows = self._execute(CLAIM_SQL, params)
        claimed = [Claimed(*row) for row in rows]
        with self._lock:
            for c in claimed:
                self._in_flight[c.endpoint_id] += 1
            self.metrics.in_flight.set(sum(self._in_flight.values()))
        return claimed

    def _attempt(self, claimed: Claimed) -> None:
        try:
            error = self._send(claimed)
            self._record(claimed, error)
        except Exception:  # a worker must never die silently; the lease brings the row back
            log.exception("recording delivery %s failed; it is retried after its lease", claimed.id)
        finally:
            with self._lock:
                self._in_flight[claimed.endpoint_id] -= 1
                self.metrics.in_flight.set(sum(self._in_flight.values()))
            self.wake.set()

    def _send(self, claimed: Claimed) -> str | None:
        """None when delivered, else what went wrong (no response body: it is the receiver's)."""
        body = claimed.body.encode()
        headers = signed_headers(claimed.secret, str(claimed.event_id), int(time.time()), body)
        started = time.monotonic()
        try:
            answer = self._http.post(claimed.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return f"timed out after {self.policy.timeout:g} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: could not reach the endpoint"
        finally:
            self.metrics.seconds.observe(time.monotonic() - started)
        if 200 <= answer.status_code < 300:
            return None
        return f"HTTP {answer.status_code}"

    def _record(self, claimed: Claimed, error: str | None) -> None:
        extra = {"delivery_id": str(claimed.id), "endpoint_id": str(claimed.endpoint_id)}
        if error is None:
            self._execute(DELIVERED_SQL, (claimed.id,), fetch=False)
            self.metrics.attempts.labels("delivered").inc()
            log.info("delivered on attempt %d", claimed.attempts, extra=extra)
        elif claimed.attempts >= self.policy.max_attempts:
            self._execute(DEAD_SQL, (error, claimed.id), fetch=False)
            self.metrics.attempts.labels("dead").inc()
            log.warning(
                "dead after %d attempts (%s); `prequalctl webhooks replay` sends it again",
                claimed.attempts,
                error,
                extra=extra,
            )
        else:
            delay = self.policy.backoff(claimed.attempts)
            self._execute(RETRY_SQL, (delay, error, claimed.id), fetch=False)
            self.metrics.attempts.labels("retry").inc()
            log.info(
                "attempt %d failed (%s); next in %.1f s",
                claimed.attempts,
                error,
                delay,
                extra=extra,
            )

    def _execute(self, sql: str, params: Any, *, fetch: bool = True) -> list[tuple[Any, ...]]:
        """One autocommit statement on the deliverer's connection (reconnected after a loss).
        A database outage is logged and waited out: claimed rows come back after their lease."""
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self.connect()
                cursor = self._conn.execute(sql, params)
                return cursor.fetchall() if fetch else []
            except psycopg.OperationalError as exc:
                log.warning("database unreachable (%s); trying again", type(exc).__name__)
                self._close_locked()
                return []

    def _close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
