"""A real HTTP receiver on loopback for the dispatcher's tests.

Each endpoint is a path (`/hooks/<name>`) with a script of answers: a status code, `HANG`
(hold the request until the test releases it, so a timeout happens without sleeping) or `SLOW`
(hold it `slow_seconds`, then 204). Every request is recorded with whether its Standard Webhooks
signature verified, checked with the reference `standardwebhooks` package and the endpoint's
secret; `peak` is the most requests each endpoint had open at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

HANG = -1
SLOW = -2


@dataclass
class Received:
    endpoint: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float
    wall: float = field(default_factory=time.time)


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    secrets: dict[str, str] = field(default_factory=dict)
    scripts: dict[str, list[int]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    slow_seconds: float = 0.5
    open: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)

    def url(self, name: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/{name}"

    def endpoint(self, name: str, secret: str, script: list[int] | None = None) -> str:
        """Registers `name`: answers follow `script`, then 204 for ever."""
        with self.lock:
            self.secrets[name] = secret
            self.scripts[name] = list(script or [])
        return self.url(name)

    def of(self, name: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.endpoint == name]

    def answer(self, name: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            secret = self.secrets.get(name)
            script = self.scripts.get(name, [])
            status = script.pop(0) if script else 204
        verified = False
        if secret is not None:
            try:
                Webhook(secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        with self.lock:
            self.received.append(Received(name, headers, body, verified, time.monotonic()))
            self.open[name] = self.open.get(name, 0) + 1
            self.peak[name] = max(self.peak.get(name, 0), self.open[name])
        try:
            if status == HANG:
                self.release.wait(60)
                return 204
            if status == SLOW:
                time.sleep(self.slow_seconds)
                return 204 if verified else 400
            return status if verified else 400
        finally:
            with self.lock:
                self.open[name] -= 1


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            name = self.path.rsplit("/", 1)[-1]
            status = receiver.answer(name, dict(self.headers.items()), body)
            try:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the dispatcher gave up (its timeout) and closed the connection

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serve_receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    receiver = Receiver(server)
    server.RequestHandlerClass = _handler(receiver)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
