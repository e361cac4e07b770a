"""Sending parked deliveries: claimed with a lease, POSTed signed, recorded, retried later.

- **Claim.** One statement picks due `PENDING` rows endpoint by endpoint, at most as many per
  endpoint as it has free slots in this process (`endpoint_concurrency` minus its attempts in
  flight) and at most as many in all as there are idle workers (`FOR UPDATE SKIP LOCKED`, so
  replicas never claim the same row). Claiming counts the attempt and moves `next_attempt_at`
  a lease ahead (timeout + 30 s): if this process dies mid-attempt, the row is due again then.
- **Guard.** The worker opens the endpoint's sealed signing secret (prequal.webhook_secrets)
  and resolves the endpoint's name once (prequal.egress): an address in a network webhooks may
  not reach is refused, recorded `DEAD` at once with the reason, never retried (a replay tries
  again, e.g. after the allow-list changed). The POST goes to the resolved address, with the
  name as `Host` and TLS SNI, so a second lookup cannot send it elsewhere (DNS rebinding).
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
import socket
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

from prequal import egress, sealing
from prequal.webhook_secrets import open_secret
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
RETURNING d.id, d.endpoint_id, d.event_id, d.payload::text, d.attempts, e.url, e.secret,
    e.sealed_secret
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
    # Networks delivered to although not public (WEBHOOK_ALLOWED_NETWORKS); none in production.
    allowed_networks: tuple[egress.Network, ...] = ()

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
    secret: str | None  # plaintext: a row from before migration 0011 not resealed yet
    sealed_secret: bytes | None


@dataclass(frozen=True)
class Failure:
    """A failed attempt; `final` ones are dead at once (retrying cannot help)."""

    error: str
    final: bool = False


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "webhook_delivery_attempts",
            "Delivery attempts by outcome: delivered, retry (parked with backoff), dead, or "
            "refused (the SSRF guard: a destination webhooks may not reach)",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("delivered", "retry", "dead", "refused"):
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
        opener: sealing.Opener,
        wake: threading.Event | None = None,
        *,
        resolver: egress.Resolver | None = None,
    ) -> None:
        self.connect = connect
        self.policy = policy
        self.metrics = metrics
        self.opener = opener
        self.resolver = resolver or egress.bounded(socket.getaddrinfo, policy.timeout)
        self.wake = wake or threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: Tally[uuid.UUID] = Tally()
        self._conn: psycopg.Connection[Any] | None = None
        # No proxy from the environment: the guard checks the address connected to, itself.
        self._http = httpx.Client(timeout=policy.timeout, follow_redirects=False, trust_env=False)

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
            self._record(claimed, self._send(claimed))
        except Exception:  # a worker must never die silently; the lease brings the row back
            log.exception("recording delivery %s failed; it is retried after its lease", claimed.id)
        finally:
            with self._lock:
                self._in_flight[claimed.endpoint_id] -= 1
                self.metrics.in_flight.set(sum(self._in_flight.values()))
            self.wake.set()

    def _secret(self, claimed: Claimed) -> str:
        if claimed.sealed_secret is not None:
            return open_secret(self.opener, claimed.sealed_secret, claimed.endpoint_id)
        if claimed.secret is None:
            raise sealing.MalformedSealError("the endpoint has no signing secret")
        return claimed.secret

    def _prepare(self, claimed: Claimed) -> tuple[str, egress.Destination] | Failure:
        """The signing secret and the one resolved destination, or why there is none."""
        try:
            secret = self._secret(claimed)
        except sealing.UnknownSealingKeyError as exc:  # not distributed here yet: try later
            return Failure(f"signing secret: {exc}")
        except sealing.OpenError as exc:
            return Failure(f"signing secret: {exc}", final=True)
        try:
            destination = egress.resolve(claimed.url, self.policy.allowed_networks, self.resolver)
        except egress.RefusedDestinationError as exc:
            return Failure(f"refused: {exc}", final=True)
        except egress.UnresolvedDestinationError as exc:
            return Failure(str(exc))
        return secret, destination

    def _send(self, claimed: Claimed) -> Failure | None:
        """None when delivered, else what went wrong (no response body: it is the receiver's)."""
        prepared = self._prepare(claimed)
        if isinstance(prepared, Failure):
            return prepared
        secret, destination = prepared
        body = claimed.body.encode()
        headers = signed_headers(secret, str(claimed.event_id), int(time.time()), body)
        headers["host"] = destination.host_header
        extensions = {"sni_hostname": destination.sni_hostname} if destination.sni_hostname else {}
        started = time.monotonic()
        try:
            answer = self._http.post(
                destination.url, content=body, headers=headers, extensions=extensions
            )
        except httpx.TimeoutException:
            return Failure(f"timed out after {self.policy.timeout:g} s")
        except httpx.HTTPError as exc:
            return Failure(f"{type(exc).__name__}: could not reach the endpoint")
        finally:
            self.metrics.seconds.observe(time.monotonic() - started)
        if 200 <= answer.status_code < 300:
            return None
        return Failure(f"HTTP {answer.status_code}")

    def _record(self, claimed: Claimed, failure: Failure | None) -> None:
        extra = {"delivery_id": str(claimed.id), "endpoint_id": str(claimed.endpoint_id)}
        if failure is None:
            self._execute(DELIVERED_SQL, (claimed.id,), fetch=False)
            self.metrics.attempts.labels("delivered").inc()
            log.info("delivered on attempt %d", claimed.attempts, extra=extra)
            return
        error = failure.error
        if failure.final:
            self._execute(DEAD_SQL, (error, claimed.id), fetch=False)
            self.metrics.attempts.labels("refused" if error.startswith("refused") else "dead").inc()
            log.warning("dead at once, not retried: %s", error, extra=extra)
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
