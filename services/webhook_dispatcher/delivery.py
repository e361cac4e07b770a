"""Sending parked deliveries: claimed with a lease, POSTed signed, recorded, retried later.

- **Claim.** One statement picks due `PENDING` rows endpoint by endpoint, each with one of the
  endpoint's concurrency slots, which every replica shares (webhook_dispatcher.slots: at most
  `endpoint_concurrency` attempts per endpoint across all dispatchers), and at most as many in
  all as there are idle workers (`FOR UPDATE SKIP LOCKED`, so replicas never claim the same
  row). A due row without a free slot stays parked and due. Claiming counts the attempt and
  moves `next_attempt_at` and the slot's expiry a lease ahead (timeout + margin, 30 s): if this
  process dies mid-attempt, the row is due and the slot free again then; an attempt still
  running at half its lease renews both.
- **Guard.** The worker opens the endpoint's sealed signing secret (prequal.webhook_secrets)
  and resolves the endpoint's name once (prequal.egress): an address in a network webhooks may
  not reach is refused, recorded `DEAD` at once with the reason, never retried (a replay tries
  again, e.g. after the allow-list changed). The POST goes to the resolved address, with the
  name as `Host` and TLS SNI, so a second lookup cannot send it elsewhere (DNS rebinding).
- **Send.** A worker thread POSTs the Standard Webhooks body with `webhook-id` (the event id,
  the same on every retry), `webhook-timestamp` and `webhook-signature`, with a timeout for
  each phase of the attempt (connect, send, each read). 2xx is delivered; anything else (a
  status, a timeout, a refused connection) is a failed attempt.
- **Record.** Delivered; or parked again with exponential backoff and the error; or, after
  `max_attempts`, `DEAD` (kept, replayable with `prequalctl webhooks replay`). The same
  statement gives the slot back.

A slow endpoint therefore holds at most `endpoint_concurrency` workers, of all the replicas
together, for about the timeout each; other endpoints keep the rest, and neither the consumer
nor decisions wait for any of it.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
import uuid
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
from webhook_dispatcher.slots import (
    CLAIM_SQL,
    DEAD_SQL,
    DELIVERED_SQL,
    RENEW_SQL,
    RETRY_SQL,
    Held,
    outcome_params,
    renew_params,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout: float = 5.0
    max_attempts: int = 8
    backoff_initial: float = 2.0
    backoff_max: float = 600.0
    workers: int = 8
    endpoint_concurrency: int = 2
    poll_interval: float = 1.0
    # An attempt's lease (its row's and its slot's) is the timeout plus this margin.
    lease_margin: float = 30.0
    # Networks delivered to although not public (WEBHOOK_ALLOWED_NETWORKS); none in production.
    allowed_networks: tuple[egress.Network, ...] = ()

    @property
    def lease(self) -> float:
        return self.timeout + self.lease_margin

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
    slot: int


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
        self._held: dict[uuid.UUID, Held] = {}  # by delivery id: this process's attempts
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
                self._renew()
                self.wake.wait(min(self.policy.poll_interval, self.policy.lease / 4))
        self._http.close()
        self._close()

    def _claim(self) -> list[Claimed]:
        with self._lock:
            free = self.policy.workers - len(self._held)
        if free <= 0:
            return []
        params = {
            "per_endpoint": self.policy.endpoint_concurrency,
            "free": free,
            "lease": self.policy.lease,
            "start": uuid.uuid4(),  # where this claim's walk over the endpoints begins
        }
        leased_at = time.monotonic()
        rows = self._execute(CLAIM_SQL, params)
        claimed = [Claimed(*row) for row in rows]
        with self._lock:
            for c in claimed:
                self._held[c.id] = Held(c.endpoint_id, c.slot, leased_at)
            self.metrics.in_flight.set(len(self._held))
        return claimed

    def _renew(self) -> None:
        """Extends the lease of every attempt of this process past half of it, in one statement,
        so a slot never lapses under an attempt that is still running."""
        now = time.monotonic()
        with self._lock:
            due = {
                delivery: held
                for delivery, held in self._held.items()
                if now - held.leased_at >= self.policy.lease / 2
            }
        if not due:
            return
        rows = self._execute(RENEW_SQL, renew_params(due, self.policy.lease))
        renewed = {row[0] for row in rows}
        with self._lock:
            for delivery in renewed:
                if delivery in self._held:
                    self._held[delivery].leased_at = now
        if len(renewed) < len(due):
            log.warning(
                "%d of %d long attempts could not renew their lease (database unreachable, or "
                "the lease ran out and the slot was taken); retrying",
                len(due) - len(renewed),
                len(due),
            )

    def _attempt(self, claimed: Claimed) -> None:
        try:
            self._record(claimed, self._send(claimed))
        except Exception:  # a worker must never die silently; the lease brings the row back
            log.exception("recording delivery %s failed; it is retried after its lease", claimed.id)
        finally:
            with self._lock:
                self._held.pop(claimed.id, None)
                self.metrics.in_flight.set(len(self._held))
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
        slot = (claimed.endpoint_id, claimed.slot)  # given back by the outcome's statement
        if failure is None:
            self._execute(DELIVERED_SQL, outcome_params(claimed.id, *slot), fetch=False)
            self.metrics.attempts.labels("delivered").inc()
            log.info("delivered on attempt %d", claimed.attempts, extra=extra)
            return
        error = failure.error
        if failure.final:
            self._execute(DEAD_SQL, outcome_params(claimed.id, *slot, error=error), fetch=False)
            self.metrics.attempts.labels("refused" if error.startswith("refused") else "dead").inc()
            log.warning("dead at once, not retried: %s", error, extra=extra)
        elif claimed.attempts >= self.policy.max_attempts:
            self._execute(DEAD_SQL, outcome_params(claimed.id, *slot, error=error), fetch=False)
            self.metrics.attempts.labels("dead").inc()
            log.warning(
                "dead after %d attempts (%s); `prequalctl webhooks replay` sends it again",
                claimed.attempts,
                error,
                extra=extra,
            )
        else:
            delay = self.policy.backoff(claimed.attempts)
            self._execute(
                RETRY_SQL, outcome_params(claimed.id, *slot, delay=delay, error=error), fetch=False
            )
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
