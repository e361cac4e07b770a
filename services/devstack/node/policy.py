"""NetworkPolicy enforcement: kube-network-policies (kind's agent) as a DaemonSet on the node.

It keeps the pods' addresses in nftables sets (table `kube-network-policies`) and hands every
new connection from or to a pod to itself through an NFQUEUE, then accepts or drops it by the
NetworkPolicies that select the pods. This machine's kernel lacks the nftables `queue`
expression, so the image is built with the xtables NFQUEUE target in its place
(images/sources.py, network_policies_binary). It runs in the host's network namespace as root
with NET_ADMIN only, like upstream's DaemonSet; the node's stop removes its table.
"""

from __future__ import annotations

import subprocess

import yaml

NAMESPACE = "kube-system"
NAME = "kube-network-policies"
NFT_TABLE = "kube-network-policies"
QUEUE_ID = 100

_LABELS = {"app.kubernetes.io/name": NAME}

ARGS = (
    f"--nfqueue-id={QUEUE_ID}",
    "--hostname-override=$(NODE_NAME)",
    # Kernel 6.12+ has the conntrack fix: DNS needs no separate prerouting queue.
    "--netfilter-bug-1766-fix=false",
    # containerd 1.6 has no NRI socket: pod addresses come from the API server.
    "--disable-nri",
    "--metrics-bind-address=127.0.0.1:9080",
    "--v=2",
)


def manifests(image: str) -> str:
    """The objects, as one multi-document YAML for `kubectl apply`."""
    meta = {"name": NAME, "namespace": NAMESPACE}
    objects: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": NAME},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods", "namespaces", "nodes"],
                    "verbs": ["list", "watch", "get"],
                },
                {
                    "apiGroups": ["networking.k8s.io"],
                    "resources": ["networkpolicies"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": NAME,
            },
            "subjects": [{"kind": "ServiceAccount", **meta}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {**meta, "labels": _LABELS},
            "spec": {
                "selector": {"matchLabels": _LABELS},
                "template": {
                    "metadata": {"labels": _LABELS},
                    "spec": {
                        "serviceAccountName": NAME,
                        "hostNetwork": True,
                        "dnsPolicy": "ClusterFirstWithHostNet",
                        "containers": [
                            {
                                "name": NAME,
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": list(ARGS),
                                "env": [
                                    {
                                        "name": "NODE_NAME",
                                        "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                                    }
                                ],
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "32Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                "securityContext": {
                                    "runAsUser": 0,
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
                                },
                            }
                        ],
                    },
                },
            },
        },
    ]
    return yaml.safe_dump_all(objects, sort_keys=False)


def table_exists() -> bool:
    done = subprocess.run(
        ["nft", "list", "table", "inet", NFT_TABLE], capture_output=True, check=False
    )
    return done.returncode == 0


def remove_table() -> None:
    """The agent's nftables table, which outlives its pod (Ctrl-C kills it without cleanup)."""
    if table_exists():
        subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], check=False)
