"""Traefik as the node's Ingress controller: IngressClass `traefik`, reached on a loopback NodePort.

Traefik's Kubernetes Ingress provider routes every Ingress whose class names its controller
(`traefik.io/ingress-controller`): the API's (charts/loan-prequal, `api.ingress`) and Prometheus'
(manifests/monitoring). Its web entrypoint is a NodePort Service, which kube-proxy also answers on
127.0.0.1 (`localhostNodePorts`), so nothing listens on another host address. The image is built
here (`make images`, from the Go module proxy), never pulled.
"""

from __future__ import annotations

import yaml

NAMESPACE = "ingress"
CLASS_NAME = "traefik"
CONTROLLER = "traefik.io/ingress-controller"
WEB_PORT = 8000
PING_PORT = 8080

_LABELS = {"app.kubernetes.io/name": "traefik"}

ARGS = (
    f"--entryPoints.web.address=:{WEB_PORT}",
    f"--entryPoints.traefik.address=:{PING_PORT}",
    "--ping=true",
    "--providers.kubernetesingress=true",
    # Only Ingresses of this class (no class annotation fallback): an nginx Ingress is not ours.
    f"--providers.kubernetesingress.ingressclass={CLASS_NAME}",
    "--global.checkNewVersion=false",
    "--global.sendAnonymousUsage=false",
    "--log.level=INFO",
)


def manifests(image: str, node_port: int) -> str:
    """The objects, as one multi-document YAML for `kubectl apply`."""
    meta = {"name": "traefik", "namespace": NAMESPACE}
    objects: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": CLASS_NAME},
            "spec": {"controller": CONTROLLER},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "prequal-traefik"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "secrets", "nodes"],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["networking.k8s.io"],
                    "resources": ["ingresses", "ingressclasses"],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": ["networking.k8s.io"],
                    "resources": ["ingresses/status"],
                    "verbs": ["update"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "prequal-traefik"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "prequal-traefik",
            },
            "subjects": [{"kind": "ServiceAccount", **meta}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "labels": _LABELS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": _LABELS},
                "template": {
                    "metadata": {"labels": _LABELS},
                    "spec": {
                        "serviceAccountName": "traefik",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "traefik",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": list(ARGS),
                                "ports": [
                                    {"name": "web", "containerPort": WEB_PORT},
                                    {"name": "ping", "containerPort": PING_PORT},
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ping", "port": "ping"},
                                    "periodSeconds": 2,
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/ping", "port": "ping"},
                                    "periodSeconds": 10,
                                },
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"memory": "256Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - its own emptyDir
                            }
                        ],
                        "volumes": [{"name": "tmp", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {**meta, "labels": _LABELS},
            "spec": {
                "type": "NodePort",
                "selector": _LABELS,
                "ports": [
                    {"name": "web", "port": 80, "targetPort": "web", "nodePort": node_port},
                ],
            },
        },
    ]
    return yaml.safe_dump_all(objects, sort_keys=False)
