"""Not collected by default (no test_ prefix): test_process_cleanup runs it in a child pytest,
which it then interrupts."""

from __future__ import annotations

import os
import time
from pathlib import Path

from devstack.kafka import Kafka
from devstack.kube import ControlPlane
from devstack.postgres import Postgres


def test_hold_components_until_interrupted(
    postgres: Postgres, kafka: Kafka, control_plane: ControlPlane
) -> None:
    assert postgres.process is not None
    assert kafka.process is not None
    # postgres, java, etcd, kube-apiserver, kube-controller-manager
    pids = [postgres.process.pid, kafka.process.pid, *(p.pid for p in control_plane.processes)]
    Path(os.environ["CLEANUP_PIDS_FILE"]).write_text(" ".join(str(pid) for pid in pids))
    time.sleep(300)
