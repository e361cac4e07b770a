"""Prometheus really scrapes loopback targets and answers PromQL."""

from __future__ import annotations

import time

import httpx
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from devstack.net import LOOPBACK, free_port
from devstack.prometheus import Prometheus


def test_prometheus_scrapes_a_loopback_target_and_answers_an_instant_query(
    prometheus: Prometheus,
) -> None:
    registry = CollectorRegistry()
    gauge = Gauge("smoke_answer", "A value only this test exports", registry=registry)
    gauge.set(42)
    port = free_port()
    server, thread = start_http_server(port, addr=LOOPBACK, registry=registry)
    try:
        prometheus.add_target("smoke", f"{LOOPBACK}:{port}")
        deadline = time.monotonic() + 30
        result: list[dict[str, object]] = []
        while time.monotonic() < deadline and not result:
            resp = httpx.get(
                f"{prometheus.url}/api/v1/query", params={"query": 'smoke_answer{job="smoke"}'}
            )
            resp.raise_for_status()
            result = resp.json()["data"]["result"]
            time.sleep(0.5)
        assert result, "Prometheus never scraped the target"
        assert result[0]["value"][1] == "42"  # type: ignore[index]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
