"""Traefik, built here, routes the charts' Ingresses: the API, its /docs and Prometheus.

API_URL and PROMETHEUS_URL of .run/cluster.env go through it (the other tests' requests too);
these tests prove each route, and that what the API's Ingress leaves out is not reachable.
"""

from __future__ import annotations

import httpx
import pytest

from devstack.cluster import INGRESS_NODE_PORT
from devstack.node import ingress
from devstack.workloads import NAMESPACE, RELEASE
from tests.cluster.conftest import RunningCluster


@pytest.fixture(autouse=True)
def _traefik(cluster: RunningCluster) -> None:
    if not cluster.cluster.ingress_ready:
        pytest.skip(
            "no Traefik: `make images` builds it and the node runs it only with"
            " PREQUAL_EXTRA_IMAGES=traefik"
            " (its first build from the Go module proxy is long; docs/cluster.md)"
        )


def test_the_ingresses_name_the_node_controller(cluster: RunningCluster) -> None:
    ingress_class = cluster.json("get", "ingressclass", ingress.CLASS_NAME)
    assert ingress_class["spec"]["controller"] == ingress.CONTROLLER
    api = cluster.json("-n", NAMESPACE, "get", "ingress", f"{RELEASE}-api")
    monitoring = cluster.json("-n", "monitoring", "get", "ingress", "monitoring")
    for obj in (api, monitoring):
        assert obj["spec"]["ingressClassName"] == ingress.CLASS_NAME
    endpoints = cluster.cluster.endpoints()
    assert endpoints["API_URL"].endswith(f":{INGRESS_NODE_PORT}")
    assert f":{INGRESS_NODE_PORT}/" in endpoints["PROMETHEUS_URL"]


def test_the_api_and_its_docs_are_routed(cluster: RunningCluster) -> None:
    url = cluster.cluster.endpoints()["API_URL"]
    docs = httpx.get(f"{url}/docs", timeout=5)
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    schema = httpx.get(f"{url}/openapi.json", timeout=5)
    assert schema.status_code == 200
    assert "/applications" in schema.json()["paths"]
    # The API itself answers: no token, so 401 from the API (not Traefik's 404).
    anonymous = httpx.post(f"{url}/applications", json={}, timeout=5)
    assert anonymous.status_code == 401, anonymous.text
    with cluster.http() as http:
        assert (
            http.get("/applications/00000000-0000-0000-0000-000000000000/status").status_code == 404
        )


def test_what_the_api_ingress_leaves_out_is_not_routed(cluster: RunningCluster) -> None:
    url = cluster.cluster.endpoints()["API_URL"]
    for path in ("/metrics", "/ready", "/health"):
        response = httpx.get(f"{url}{path}", timeout=5)
        assert response.status_code == 404, path
        assert response.text.strip() == "404 page not found", path  # Traefik's, not the API's


def test_prometheus_is_routed(cluster: RunningCluster) -> None:
    url = cluster.cluster.endpoints()["PROMETHEUS_URL"]
    built = httpx.get(f"{url}/api/v1/status/buildinfo", timeout=5)
    assert built.status_code == 200
    assert built.json()["status"] == "success"
