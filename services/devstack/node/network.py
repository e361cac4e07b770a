"""The pod network: one Linux bridge inside this machine, CNI config, and its clean removal.

The bridge is created before the kubelet starts, with the node's address on it, so the API
server, the kubelet and kube-proxy can bind to an address pods reach (loopback inside a pod is
the pod's own). The CNI `bridge` plugin then attaches each pod's veth to it and `host-local`
hands out addresses from `POD_SUBNET`. `sweep()` removes every trace: pod network namespaces,
the bridge (the veths go with their namespaces), and the KUBE-* / CNI-* iptables chains.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "prequal0"
POD_CIDR = "10.244.0.0/16"
POD_SUBNET = "10.244.0.0/24"
NODE_IP = "10.244.0.1"
CNI_BIN_DIR = Path("/usr/lib/cni")
NETNS_DIR = Path("/run/netns")
# Chains that kube-proxy (KUBE-) and the CNI bridge/portmap plugins (CNI-) create.
_OWNED_CHAIN = re.compile(r"^(KUBE-|CNI-)")
_SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/ipv4/conf/all/route_localnet": "1",
}


class NetworkError(RuntimeError):
    pass


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result


@dataclass
class PodNetwork:
    """The bridge, the CNI config directory and the sysctls the node needs, restored on stop."""

    directory: Path
    saved_sysctls: dict[str, str] | None = None

    @property
    def conf_dir(self) -> Path:
        return self.directory / "net.d"

    def start(self) -> PodNetwork:
        if _run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
            raise NetworkError(
                f"network interface {BRIDGE} already exists: another `make cluster` (or the "
                "cluster test tier) runs on this machine, or one was killed; stop it, or run "
                f"`ip link delete {BRIDGE}`"
            )
        self.saved_sysctls = {}
        for key, value in _SYSCTLS.items():
            path = Path("/proc/sys") / key
            self.saved_sysctls[key] = path.read_text().strip()
            path.write_text(value)
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{NODE_IP}/{POD_SUBNET.split('/')[1]}", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "10-prequal.conflist").write_text(json.dumps(self._conflist(), indent=2))
        return self

    def _conflist(self) -> dict[str, object]:
        return {
            "cniVersion": "0.4.0",
            "name": "prequal",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(self.directory / "ipam"),
                        "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                # Docker sets the FORWARD policy to DROP; this accepts pod traffic (CNI-FORWARD).
                {"type": "firewall", "backend": "iptables"},
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "loopback"},
            ],
        }

    def stop(self) -> None:
        sweep()
        for key, value in (self.saved_sysctls or {}).items():
            with contextlib.suppress(OSError):
                (Path("/proc/sys") / key).write_text(value)
        self.saved_sysctls = None


def sweep() -> None:
    """Removes pod network namespaces, the bridge and the KUBE-*/CNI-* iptables chains."""
    for netns in sorted(NETNS_DIR.glob("cni-*")):
        _run("umount", "-l", str(netns), check=False)
        with contextlib.suppress(OSError):
            netns.unlink()
    for veth in leftover_interfaces():
        _run("ip", "link", "delete", veth, check=False)
    for binary in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            _drop_owned_chains(binary, table)


def leftover_interfaces() -> list[str]:
    """The bridge and veths enslaved to it (a veth whose namespace is gone is gone too)."""
    out = _run("ip", "-o", "link", "show", check=False).stdout
    names = []
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name == BRIDGE or f"master {BRIDGE} " in line:
            names.append(name)
    # Enslaved veths first, the bridge last.
    return sorted(names, key=lambda n: n == BRIDGE)


def owned_chains() -> list[str]:
    """`binary/table/chain` for every KUBE-* or CNI-* chain present: empty after a clean stop."""
    found = []
    for binary in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            rules = _run(binary, "-w", "-t", table, "-S", check=False).stdout.splitlines()
            found += [
                f"{binary}/{table}/{line.split()[1]}"
                for line in rules
                if line.startswith("-N ") and _OWNED_CHAIN.match(line.split()[1])
            ]
    return found


def _drop_owned_chains(binary: str, table: str) -> None:
    result = _run(binary, "-w", "-t", table, "-S", check=False)
    if result.returncode != 0:
        return
    rules = result.stdout.splitlines()
    owned = [
        r.split()[1] for r in rules if r.startswith("-N ") and _OWNED_CHAIN.match(r.split()[1])
    ]
    # Jumps into our chains from chains we do not own (PREROUTING, FORWARD, ...) go first.
    for rule in rules:
        parts = shlex.split(rule)
        if parts[0] != "-A" or _OWNED_CHAIN.match(parts[1]):
            continue
        if any(p in owned for p in parts[2:]):
            _run(binary, "-w", "-t", table, "-D", *parts[1:], check=False)
    for chain in owned:
        _run(binary, "-w", "-t", table, "-F", chain, check=False)
    for chain in owned:
        _run(binary, "-w", "-t", table, "-X", chain, check=False)
