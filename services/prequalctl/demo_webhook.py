"""The demo's webhook receiver: a loopback HTTP server registered as the demo client's endpoint
for the length of the demo, which checks each delivery's Standard Webhooks signature."""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from prequal.webhooks import sign


@dataclass
class Delivery:
    application_id: str
    status: str
    verified: bool


@dataclass
class DemoReceiver:
    secret: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def accept(self, headers: dict[str, str], body: bytes) -> None:
        expected = sign(
            self.secret,
            headers.get("webhook-id", ""),
            int(headers.get("webhook-timestamp", 0)),
            body,
        )
        verified = hmac.compare_digest(expected, headers.get("webhook-signature", ""))
        data = json.loads(body).get("data", {})
        with self.arrived:
            self.deliveries.append(
                Delivery(str(data.get("application_id")), str(data.get("status")), verified)
            )
            self.arrived.notify_all()

    def wait_for(self, application_id: str, timeout: float) -> Delivery | None:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = next(
                    (d for d in self.deliveries if d.application_id == application_id), None
                )
                left = deadline - time.monotonic()
                if found or left <= 0:
                    return found
                self.arrived.wait(left)


def _handler(receiver: DemoReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            receiver.accept({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def registered_receiver(http: httpx.Client) -> Iterator[DemoReceiver | str]:
    """A receiver registered through the API and removed afterwards; or why there is none."""
    receiver = DemoReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    thread = threading.Thread(target=server.serve_forever, name="demo-receiver", daemon=True)
    thread.start()
    endpoint_id = None
    try:
        host, port = server.server_address[:2]
        created = http.post("/webhooks/endpoints", json={"url": f"http://{host!s}:{port}/demo"})
        if created.status_code != 201:
            yield f"no webhook: registering the endpoint answered {created.status_code}"
            return
        endpoint_id = created.json()["id"]
        receiver.secret = created.json()["secret"]
        yield receiver
    finally:
        if endpoint_id is not None:
            http.delete(f"/webhooks/endpoints/{endpoint_id}")
        server.shutdown()
        server.server_close()
