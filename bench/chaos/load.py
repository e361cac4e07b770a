"""The paced load: `count` applications at `rate` per second through both API instances.

Each application has its own synthetic PAN (tests.applications) and an Idempotency-Key, and is
retried as a careful client would: after a connection error, a timeout or a `5xx` it is sent
again with the same key (to the other instance first, backing off to 4 s) until it gets an
answer that is not an outage, or until `give_up_after` seconds. Every response is recorded.
At most `concurrency` applications are in flight: during an outage the schedule falls behind
and catches up afterwards, as a client with a bounded connection pool does.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from tests.applications import application

TIMEOUT_S = 10.0


@dataclass
class Response:
    at: float  # wall clock when the answer (or the error) came
    api: int  # which instance, 0 or 1
    status: int  # 0 when there was no HTTP answer (refused, reset, timeout)


@dataclass
class Outcome:
    pan: str
    key: str
    application_id: str = ""
    accepted_at: float = 0.0
    final_status: int = 0  # the last answer: 202, a 4xx, or 0/5xx when given up
    attempts: int = 0


@dataclass
class Load:
    api_urls: list[str]
    token: str
    count: int
    rate: float
    concurrency: int = 64
    give_up_after: float = 240.0
    outcomes: list[Outcome] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> None:
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)
        self._thread.start()

    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def join(self) -> None:
        assert self._thread
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._all())
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread by join()
            self._error = exc
        self.finished_at = time.time()

    async def _all(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        headers = {"Authorization": f"Bearer {self.token}"}
        clients = [
            httpx.AsyncClient(base_url=url, timeout=TIMEOUT_S, limits=limits, headers=headers)
            for url in self.api_urls
        ]
        slots = asyncio.Semaphore(self.concurrency)
        try:
            await asyncio.gather(*(self._submit(i, clients, slots) for i in range(self.count)))
        finally:
            for client in clients:
                await client.aclose()

    async def _submit(
        self, index: int, clients: list[httpx.AsyncClient], slots: asyncio.Semaphore
    ) -> None:
        body: dict[str, Any] = application()
        outcome = Outcome(str(body["pan_number"]), str(uuid.uuid4()))
        self.outcomes.append(outcome)
        await asyncio.sleep(max(0.0, self.started_at + index / self.rate - time.time()))
        async with slots:
            deadline = time.monotonic() + self.give_up_after
            backoff = 0.25
            while True:
                which = (index + outcome.attempts) % len(clients)
                outcome.attempts += 1
                status, answer = await _post(clients[which], body, outcome.key)
                self.responses.append(Response(time.time(), which, status))
                outcome.final_status = status
                if status == 202:
                    outcome.application_id = str(answer["application_id"])
                    outcome.accepted_at = time.time()
                    return
                if 0 < status < 500 or time.monotonic() > deadline:
                    outcome.application_id = str(answer.get("application_id", ""))
                    return
                await asyncio.sleep(backoff)
                backoff = min(4.0, backoff * 2)


async def _post(client: httpx.AsyncClient, body: dict[str, Any], key: str) -> tuple[int, Any]:
    try:
        response = await client.post("/applications", json=body, headers={"Idempotency-Key": key})
    except httpx.HTTPError:
        return 0, {}
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    return response.status_code, answer if isinstance(answer, dict) else {}
