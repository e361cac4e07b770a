"""The orphan sweep: SCRAM users (and their ACLs) whose LoanPipeline no longer exists.

Deleting a LoanPipeline never waits for Kafka (DESIGN.md: deletion never hangs a namespace),
so its users are removed on a best-effort basis when the operator sees the deletion
(deletion.py) and, whatever happened then, by this sweep: at start-up and every
`OPERATOR_ORPHAN_SWEEP_SECONDS` (default 60) it looks at every Kafka cluster it knows — the
bootstrap lists of the pipelines that exist now and of every pipeline it has seen since it
started — lists the SCRAM users there and removes those that

- follow the operator's naming scheme `<namespace>.<pipeline>.<service>` (a namespace has no
  dots, the service is one of prequal.kafka_acl.SERVICE_PRINCIPALS; anything else, `admin`
  for one, is never touched), in a namespace the operator watches;
- name a pipeline the API server says does not exist at the moment of the sweep (a list by
  name, not the watch's cache);
- name a pipeline the watch has not reported within the last interval (its deletion counts:
  the cleanup at deletion goes first; the sweep is for what it could not do).

Why a pipeline being created is safe: its users are made by its worker only after the API
server has the object; the sweep lists users first and asks the API second, so a user it lists
belongs to a pipeline that existed before that question: absent then means deleted. The one
window left is a pipeline of the same name re-created between the question and the removal;
the third rule keeps the sweep away from any name the watch reported within the interval, and
should it still happen, the new pipeline's next pass (every resync) finds its users missing on
the broker and writes them again from its Secrets.

Bound: a deleted pipeline's users live at most until the first sweep that reaches its Kafka
after one interval has passed since the watch last reported it (about two intervals while the
operator runs and Kafka answers; at start-up for one deleted while the operator was
stopped). A connected client keeps its session until it re-authenticates (the broker's
`connections.max.reauth.ms`); no new login succeeds.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from loan_operator.kafka_admin import KafkaAdmin
from loan_operator.kafka_errors import KafkaRequestFailed, KafkaUnreachable
from loan_operator.kube import Kube
from prequal.kafka_acl import SERVICE_PRINCIPALS

log = logging.getLogger("loan_operator")

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NAME = re.compile(r"[a-z0-9]([-.a-z0-9]*[a-z0-9])?")


def pipeline_of(user: str) -> tuple[str, str] | None:
    """(namespace, pipeline) of a user named by the operator's scheme, else None."""
    namespace, dot, rest = user.partition(".")
    name, dot2, role = rest.rpartition(".")
    if not (dot and dot2) or role not in SERVICE_PRINCIPALS:
        return None
    if not (_NAMESPACE.fullmatch(namespace) and _NAME.fullmatch(name)):
        return None
    return namespace, name


class OrphanSweep:
    def __init__(
        self,
        kube: Kube,
        kafka: Callable[[str], KafkaAdmin],
        *,
        namespaces: Sequence[str],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.kafka = kafka
        self.namespaces = tuple(namespaces)
        self.interval = interval
        self.clock = clock
        self._seen: dict[tuple[str, str], float] = {}  # (namespace, name) → last reported
        self._clusters: set[str] = set()  # bootstrap lists of every pipeline seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="orphan-sweep", daemon=True)

    def saw(self, body: Mapping[str, Any]) -> None:
        """The watch reported this pipeline (any event, its deletion included)."""
        meta = body["metadata"]
        bootstrap = ((body.get("spec") or {}).get("kafka") or {}).get("bootstrapServers")
        with self._lock:
            self._seen[(meta["namespace"], meta["name"])] = self.clock()
            if bootstrap:
                self._clusters.add(str(bootstrap))

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep()
            except Exception:  # an API error or a bug: the next interval tries again
                log.exception("orphan sweep failed")
            self._stop.wait(self.interval)

    def sweep(self) -> dict[str, list[str]]:
        """One sweep of every known cluster; bootstrap list → the users it removed there."""
        alive = self.kube.pipeline_bootstraps(self.namespaces)
        now = self.clock()
        with self._lock:
            for key, bootstrap in alive.items():
                self._seen[key] = now
                if bootstrap:
                    self._clusters.add(bootstrap)
            clusters = sorted(self._clusters)
        removed: dict[str, list[str]] = {}
        for bootstrap in clusters:
            try:
                users = self._sweep_cluster(bootstrap)
            except (KafkaUnreachable, KafkaRequestFailed) as exc:
                log.info("orphan sweep: %s not swept this time: %s", bootstrap, exc)
                continue
            if users:
                removed[bootstrap] = users
        return removed

    def _sweep_cluster(self, bootstrap: str) -> list[str]:
        admin = self.kafka(bootstrap)
        candidates: dict[tuple[str, str], list[str]] = {}
        for user in sorted(admin.all_scram_users()):  # users first, the API second
            owner = pipeline_of(user)
            if owner is None or (self.namespaces and owner[0] not in self.namespaces):
                continue
            candidates.setdefault(owner, []).append(user)
        orphans: list[str] = []
        for (namespace, name), users in sorted(candidates.items()):
            with self._lock:
                last_seen = self._seen.get((namespace, name))
            if last_seen is not None and self.clock() - last_seen < self.interval:
                continue
            if self.kube.pipeline_exists(namespace, name):
                continue
            orphans += users
        if not orphans:
            return []
        deleted = admin.delete_scram_users(orphans)
        revoked = admin.revoke(orphans)
        log.warning(
            "orphan sweep: removed SCRAM users %s and %d ACLs naming them from %s "
            "(their LoanPipelines no longer exist)",
            ", ".join(orphans),
            revoked,
            bootstrap,
        )
        return sorted(set(deleted) | set(orphans))
