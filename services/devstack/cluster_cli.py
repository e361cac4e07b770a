"""`devstack cluster`: the real single-node Kubernetes in the foreground, as `make cluster` runs it.

Ctrl-C (or SIGTERM) stops every component and removes what the node created: containers,
mounts, the pod bridge and its veths, and the KUBE-*/CNI-* iptables chains.
"""

from __future__ import annotations

import signal
import sys
import time
import types
from pathlib import Path

from devstack.cluster import LocalCluster, leftovers
from devstack.node.containerd import ContainerdError
from devstack.node.images import ImageError, image_set
from devstack.node.network import NetworkError
from devstack.process import ComponentStartError
from devstack.tools import ToolMissingError
from devstack.workloads import Workloads


class _SignalledError(Exception):
    pass


def _stop(signum: int, frame: types.FrameType | None) -> None:
    raise _SignalledError(signal.Signals(signum).name)


def cluster_main(run_dir: Path, *, node_only: bool = False) -> int:
    images = image_set()
    cluster = LocalCluster(run_dir, images=images, env_path=run_dir.parent / "cluster.env")
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    started = time.monotonic()

    def progress(line: str) -> None:
        print(f"==> [{time.monotonic() - started:5.1f}s] {line}", flush=True)

    try:
        cluster.start(progress)
        if not node_only:
            Workloads(cluster, images).install(progress)
        cluster.write_env()
        _report(cluster, time.monotonic() - started)
        while True:
            time.sleep(1)
    except (
        ComponentStartError,
        ToolMissingError,
        NetworkError,
        ImageError,
        ContainerdError,
    ) as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    except _SignalledError as why:
        print(f"\n==> {why}: stopping everything", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        cluster.stop()
        cluster.env_file.unlink(missing_ok=True)
        left = leftovers(cluster.run_dir, cluster.image_store)
        if left:
            print("==> stopped, but these are left behind:\n  " + "\n  ".join(left), flush=True)
        else:
            print("==> stopped; no container, mount, bridge or iptables rule left", flush=True)


def _report(cluster: LocalCluster, seconds: float) -> None:
    print(f"\nUp in {seconds:.0f}s. Endpoints (also in {cluster.env_file}):")
    for key, value in cluster.endpoints().items():
        print(f"  {key}={value}")
    print(f"Logs: {cluster.run_dir}/kube/logs/, {cluster.node_dir}/*/*.log")
    print(f"Try: kubectl --kubeconfig {cluster.kubeconfig} get pods -A")
    print("Ctrl-C stops everything.", flush=True)
