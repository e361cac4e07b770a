"""`helm uninstall` of the platform leaves nothing of it but the retained topics."""

from __future__ import annotations

import json
from typing import Any

from devstack import cluster_kafka
from devstack.workloads import NAMESPACE, RELEASE, split_image
from tests.cluster.conftest import RunningCluster
from tests.polling import wait_until

LIST_TOPICS = (
    "import os; from confluent_kafka.admin import AdminClient;"
    "admin = AdminClient({'bootstrap.servers': 'kafka.lending.svc.cluster.local:9092',"
    " 'security.protocol': 'sasl_ssl', 'sasl.mechanism': 'SCRAM-SHA-512',"
    " 'sasl.username': os.environ['USERNAME'], 'sasl.password': os.environ['PASSWORD'],"
    " 'ssl.ca.location': '/etc/kafka-ca/ca.crt'});"
    "print('\\n'.join(sorted(admin.list_topics(timeout=20).topics)))"
)
# The pipeline's own principals go with it (the operator removes their SCRAM users, and their
# credentials Secrets are the pipeline's), so the topics are listed as the dev broker's admin.
CREDENTIALS_SECRET = f"{RELEASE}-kafka-prequalctl"


def _list_topics_pod(image: str) -> dict[str, Any]:
    """The pod's spec (as `kubectl run --overrides`): the broker admin's login and the dev CA."""
    return {
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "list-topics",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", LIST_TOPICS],
                    "env": [
                        {"name": "USERNAME", "value": cluster_kafka.ADMIN},
                        {
                            "name": "PASSWORD",
                            "valueFrom": {
                                "secretKeyRef": {
                                    "name": cluster_kafka.USERS_SECRET,
                                    "key": cluster_kafka.ADMIN,
                                }
                            },
                        },
                    ],
                    "volumeMounts": [{"name": "ca", "mountPath": "/etc/kafka-ca"}],
                }
            ],
            "volumes": [{"name": "ca", "secret": {"secretName": cluster_kafka.CA_SECRET}}],
        }
    }


def _left(cluster: RunningCluster) -> list[str]:
    out = cluster.kubectl(
        "-n",
        NAMESPACE,
        "get",
        "all,configmaps,secrets,serviceaccounts,networkpolicies,poddisruptionbudgets,loanpipelines",
        "-l",
        f"app.kubernetes.io/instance={RELEASE}",
        "-o",
        "name",
    )
    return out.split()


def _secret_exists(cluster: RunningCluster, name: str) -> bool:
    out = cluster.kubectl(
        "-n", NAMESPACE, "get", "secret", name, "--ignore-not-found", "-o", "name"
    )
    return bool(out.strip())


def test_uninstall_leaves_only_the_retained_topics(cluster: RunningCluster) -> None:
    cluster.helm("uninstall", RELEASE, f"--namespace={NAMESPACE}", "--wait", "--timeout=180s")
    wait_until(lambda: not _left(cluster), timeout=120, interval=1)
    # The pipeline's Kafka credentials go with it (garbage-collected through its ownerReference).
    wait_until(lambda: not _secret_exists(cluster, CREDENTIALS_SECRET), timeout=60, interval=1)

    repository, tag = split_image(cluster.workloads.images["PREQUAL_IMAGE"])
    cluster.kubectl(
        "-n",
        NAMESPACE,
        "run",
        "list-topics",
        "--restart=Never",
        f"--image={repository}:{tag}",
        f"--overrides={json.dumps(_list_topics_pod(f'{repository}:{tag}'))}",
    )
    try:
        cluster.kubectl(
            "-n",
            NAMESPACE,
            "wait",
            "pod/list-topics",
            "--for=jsonpath={.status.phase}=Succeeded",
            "--timeout=90s",
        )
        topics = cluster.kubectl("-n", NAMESPACE, "logs", "list-topics").split()
    finally:
        cluster.kubectl("-n", NAMESPACE, "delete", "pod", "list-topics", "--wait=false")
    assert "loan_applications_submitted" in topics, topics
    assert "credit_reports_generated" in topics or len(topics) >= 2, topics
