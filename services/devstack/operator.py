"""The loan-operator as a local process, as `make run` and the chaos run start it.

It watches every namespace (the chart's default), talks to the local control plane through a
kubeconfig, serves /metrics on a port of its own and is ready when kopf's liveness endpoint
answers. `launch_operator` does not wait: the Supervisor polls the returned Launch, and a
platform's first start calls `wait()` on it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from devstack.net import LOOPBACK, free_port, http_ok
from devstack.process import ManagedProcess
from devstack.services import console_script
from devstack.supervisor import Launch

NAME = "loan-operator"


def launch_operator(
    kubeconfig: Path,
    log_dir: Path,
    metrics_port: int,
    *,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> Launch:
    liveness = f"http://{LOOPBACK}:{free_port()}/healthz"
    operator = ManagedProcess(
        NAME,
        [
            console_script(NAME),
            # Every namespace, as the chart's default: a pipeline applied anywhere (the
            # tenants sample) is reconciled, not only the sample's.
            "--all-namespaces",
            "--liveness",
            liveness,
        ],
        log_dir / f"{NAME}.log",
        env={
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "METRICS_PORT": str(metrics_port),
            **(extra_env or {}),
        },
    )
    operator.start()
    return Launch(operator, lambda: http_ok(liveness), timeout)
