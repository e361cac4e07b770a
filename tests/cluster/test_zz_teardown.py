"""Stopping the node leaves no process, mount, network interface or iptables rule behind.

The last test of the tier: it stops the session's cluster itself and looks for leftovers.
"""

from __future__ import annotations

from pathlib import Path

from devstack.cluster import leftovers
from tests.cluster.conftest import RunningCluster


def _processes_under(directory: Path) -> list[str]:
    marker = str(directory).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                found.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:120])
    return found


def test_stopping_the_node_leaves_nothing_behind(cluster: RunningCluster) -> None:
    run_dir = cluster.cluster.run_dir
    shims = cluster.cluster.containerd.shim_pids() if cluster.cluster.containerd else []
    assert shims, "the node ran no container: nothing would prove the clean-up"

    cluster.stop()

    assert _processes_under(run_dir) == []
    assert leftovers(run_dir, cluster.cluster.image_store) == []
