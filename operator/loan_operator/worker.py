"""One thread per LoanPipeline: when to converge, when to poll lag, how long to back off.

kopf's timers and daemons would do this, but kopf puts a finalizer on every object that has
one (`requires_finalizer=True` in kopf.on.timer/daemon), held for as long as the daemon runs.
So kopf only watches (`on.event`) and this module keeps the clock: converge on a new
generation, on every resync and, after a failure, with exponential backoff; poll each consumer
at its `pollingIntervalSeconds`. No finalizer: once the watch reports the object gone, this
thread removes its Kafka users (best effort; the orphan sweep catches what it cannot) and
deletes the topics if the policy says so (deletion.py), then ends.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from loan_operator.backoff import backoff
from loan_operator.deletion import PipelineDeletion
from loan_operator.kube import Kube, PipelineRef
from loan_operator.pipeline_state import PipelineState
from loan_operator.reconcile import Reconciler
from loan_operator.spec import PipelineSpec, parse_spec

log = logging.getLogger("loan_operator")


class PipelineWorker:
    def __init__(
        self,
        body: Mapping[str, Any],
        reconciler: Reconciler,
        deletion: PipelineDeletion,
        kube: Kube,
        *,
        resync: float,
        max_backoff: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        meta = body["metadata"]
        self.ref = PipelineRef(meta["namespace"], meta["name"], meta["uid"])
        self.reconciler = reconciler
        self.deletion = deletion
        self.kube = kube
        self.resync = resync
        self.max_backoff = max_backoff
        self.clock = clock
        self.state = PipelineState.resume(self.ref, body.get("status") or {})
        self._body: dict[str, Any] = copy.deepcopy(dict(body))
        self._gone = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._failures = 0
        self._converged_generation: int | None = None
        self._next_converge = 0.0
        self._next_poll: dict[str, float] = {}
        self._written: dict[str, Any] | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"pipeline-{self.ref.namespace}-{self.ref.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def offer(self, body: Mapping[str, Any]) -> None:
        self._body = copy.deepcopy(dict(body))
        self._wake.set()

    def gone(self, body: Mapping[str, Any]) -> None:
        self._body = copy.deepcopy(dict(body))
        self._gone = True
        self._wake.set()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            body = self._body
            try:
                spec = parse_spec(body.get("spec") or {})
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("%s/%s: unusable spec: %r", self.ref.namespace, self.ref.name, exc)
                spec = None
            if self._gone:
                if spec is not None:
                    self.deletion.remove_access(self.ref, spec)
                    self.deletion.remove_topics(self.ref, spec)
                return
            deleting = bool(body["metadata"].get("deletionTimestamp"))
            if spec is not None and not deleting:
                try:
                    self._step(spec, int(body["metadata"].get("generation") or 0))
                except Exception:  # a bug or an API error: log it, back off, keep the thread
                    self._failures += 1
                    self._next_converge = self.clock() + backoff(self._failures, self.max_backoff)
                    log.exception("%s/%s: reconcile failed", self.ref.namespace, self.ref.name)
            self._wake.wait(self._sleep_time())
            self._wake.clear()

    def _step(self, spec: PipelineSpec, generation: int) -> None:
        now = self.clock()
        if generation != self._converged_generation or now >= self._next_converge:
            ok = self.reconciler.converge(self.state, spec, generation)
            self._converged_generation = generation
            self._failures = 0 if ok else self._failures + 1
            delay = self.resync if ok else backoff(self._failures, self.max_backoff)
            self._next_converge = self.clock() + min(delay, self.resync)
        for name in set(self._next_poll) - {c.name for c in spec.consumers}:
            del self._next_poll[name]
        for consumer in spec.consumers:
            if self.clock() >= self._next_poll.get(consumer.name, 0.0):
                self.reconciler.scale(self.state, spec, consumer)
                self._next_poll[consumer.name] = self.clock() + consumer.polling_interval_seconds
        self.reconciler.summarize_scaling(self.state, spec, generation)
        status = self.state.as_status(generation)
        if status != self._written and self.kube.patch_status(self.ref, status):
            self._written = status

    def _sleep_time(self) -> float:
        due = [self._next_converge, *self._next_poll.values()]
        return max(min(due) - self.clock(), 0.05)


class Supervisor:
    """Starts a worker for each LoanPipeline kopf reports, and retires it when it is deleted."""

    def __init__(
        self,
        make_worker: Callable[[Mapping[str, Any]], PipelineWorker],
        saw: Callable[[Mapping[str, Any]], None] = lambda body: None,
    ) -> None:
        self.make_worker = make_worker
        self.saw = saw  # told of every pipeline the watch reports (the orphan sweep)
        self._workers: dict[str, PipelineWorker] = {}
        self._lock = threading.Lock()
        self._stopped = False

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        uid = body["metadata"]["uid"]
        with self._lock:
            if self._stopped:
                return
            # A finished worker (its pipeline deleted) is dropped on the next event.
            self._workers = {k: w for k, w in self._workers.items() if w.alive or k == uid}
            worker = self._workers.get(uid)
            self.saw(body)
            if event_type == "DELETED":
                if worker is None:
                    worker = self.make_worker(body)
                    self._workers[uid] = worker
                    worker.gone(body)
                    worker.start()
                else:
                    worker.gone(body)
                return
            if worker is None:
                worker = self.make_worker(body)
                self._workers[uid] = worker
                worker.start()
            else:
                worker.offer(body)

    def count(self) -> int:
        with self._lock:
            return sum(1 for w in self._workers.values() if w.alive)

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stopped = True
            workers = list(self._workers.values())
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.stop(max(deadline - time.monotonic(), 0.1))
