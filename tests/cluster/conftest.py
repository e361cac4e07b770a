"""The `cluster` tier: a real single-node Kubernetes brought up from nothing, once per session.

`make cluster`'s own composition (devstack.cluster + devstack.workloads) starts the node and
installs manifests/dev, manifests/monitoring and both charts, with values that make the lag
scaler quick to act (the decision consumer idles at zero replicas and wakes on lag). The images
come from `make images`' own builder first (cached: seconds). The node is process-wide (one
bridge, one set of iptables chains), so only one session may run it; it is stopped by the last
test of the tier (test_zz_teardown.py), which also proves the stop leaves nothing behind, or at
session end after a failure.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devstack.cluster import LocalCluster
from devstack.hydra import fetch_token
from devstack.node.images import OPTIONAL_IMAGES, image_set
from devstack.workloads import Workloads
from tests.images.conftest import build_all

# Scaling values the tier installs with (docs/cluster.md): the decision consumer sits at zero
# pods until its group lags, then a pod starts; once drained it goes back to zero.
SCALING_VALUES = (
    "--set=consumers.decision.autoscaling.minReplicas=0",
    "--set=consumers.decision.autoscaling.pollingIntervalSeconds=2",
    "--set=consumers.decision.autoscaling.scaleDownStabilizationSeconds=10",
    "--set=consumers.credit.autoscaling.pollingIntervalSeconds=2",
)
FINAL = {"PRE_APPROVED", "REJECTED", "MANUAL_REVIEW"}


@dataclass
class RunningCluster:
    cluster: LocalCluster
    workloads: Workloads
    stopped: bool = False

    def kubectl(self, *args: str) -> str:
        return self.cluster.kubectl(*args).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def http(self) -> httpx.Client:
        """A client of the API's NodePort with a fresh token of the first demo client."""
        assert self.cluster.hydra is not None
        token = fetch_token(self.cluster.hydra.token_url, self.cluster.demo_client())
        return httpx.Client(
            base_url=self.cluster.endpoints()["API_URL"],
            timeout=10,
            headers={"Authorization": f"Bearer {token}"},
        )

    def final_status(self, http: httpx.Client, application_id: str, timeout: float = 90) -> Any:
        deadline = time.monotonic() + timeout
        body: Any = None
        while time.monotonic() < deadline:
            body = http.get(f"/applications/{application_id}/status").json()
            if body.get("status") in FINAL:
                return body
            time.sleep(0.5)
        pytest.fail(f"application {application_id} not final after {timeout:.0f}s: {body}")

    def upgrade(self, *values: str) -> None:
        self.workloads.install_platform(*SCALING_VALUES, *values)

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.workloads.helm(*args)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.cluster.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    run_dir = tmp_path_factory.mktemp("cluster")
    # `make images`' builder, cached by content hash: seconds when nothing changed.
    build_all(run_dir / "images.json")
    images = image_set()
    node = LocalCluster(run_dir, images=images)
    running = RunningCluster(node, Workloads(node, images))
    started = time.monotonic()

    def progress(line: str) -> None:
        print(f"[cluster {time.monotonic() - started:5.1f}s] {line}", flush=True)

    try:
        node.start(progress)
        optional = {images[key] for key in OPTIONAL_IMAGES}
        missing = [m for m in (node.loader.missing if node.loader else []) if m not in optional]
        if missing:
            pytest.fail(f"images missing from docker, run `make images`: {missing}")
        running.workloads.install(progress, SCALING_VALUES)
        progress("installed")
        yield running
    finally:
        running.stop()
