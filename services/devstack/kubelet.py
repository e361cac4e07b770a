"""A stand-in kubelet for `make run`: keeps as many local processes running per Deployment as
the Deployment's `spec.replicas` asks for.

The local control plane has no scheduler or kubelet, so Deployments never get pods. The
operator still scales the consumers' Deployments against lag; this runner reads those
replica counts and starts or stops real consumer processes to match, so scaling is visible on
one machine. It also writes the Deployment's status (replicas, ready, available), so
`kubectl get deploy` tells the truth about what runs.

`sync()` must be called from the main thread: ManagedProcess's parent-death signal belongs to
the thread that forked the child.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kubernetes import client
from kubernetes.client import ApiException

from devstack.services import RunningService, Services, ServiceSpec

log = logging.getLogger(__name__)


@dataclass
class ManagedDeployment:
    namespace: str
    name: str
    spec: ServiceSpec
    extra_env: Mapping[str, str]
    instances: list[RunningService] = field(default_factory=list)
    next_instance: int = 1


@dataclass
class LocalKubelet:
    api: client.ApiClient
    services: Services
    on_start: Callable[[ManagedDeployment, RunningService], None] = lambda d, s: None
    deployments: list[ManagedDeployment] = field(default_factory=list)

    def manage(
        self, namespace: str, name: str, spec: ServiceSpec, extra_env: Mapping[str, str]
    ) -> None:
        self.deployments.append(ManagedDeployment(namespace, name, spec, extra_env))

    def sync(self) -> None:
        apps = client.AppsV1Api(self.api)
        for deployment in self.deployments:
            try:
                scale = apps.read_namespaced_deployment_scale(deployment.name, deployment.namespace)
            except ApiException as exc:
                log.warning("cannot read %s/%s: %s", deployment.namespace, deployment.name, exc)
                continue
            desired = scale.spec.replicas if scale.spec else 0
            self._converge(deployment, int(desired or 0))
            self._report(apps, deployment)

    def _converge(self, deployment: ManagedDeployment, desired: int) -> None:
        # A crashed instance is replaced, as a kubelet restarts a container.
        for dead in [s for s in deployment.instances if not s.process.alive()]:
            print(f"==> {dead.process.name} exited; restarting it", flush=True)
            deployment.instances.remove(dead)
            self.services.stop(dead)
        while len(deployment.instances) < desired:
            instance = deployment.next_instance
            deployment.next_instance += 1
            service = self.services.start(
                deployment.spec, instance=instance, extra_env=deployment.extra_env
            )
            deployment.instances.append(service)
            self.on_start(deployment, service)
            print(
                f"==> {deployment.name}: started {service.process.name} "
                f"({len(deployment.instances)}/{desired})",
                flush=True,
            )
        while len(deployment.instances) > desired:
            service = deployment.instances.pop()
            self.services.stop(service)
            print(
                f"==> {deployment.name}: stopped {service.process.name} "
                f"({len(deployment.instances)}/{desired})",
                flush=True,
            )

    def _report(self, apps: client.AppsV1Api, deployment: ManagedDeployment) -> None:
        count = len(deployment.instances)
        status = {
            "status": {
                "replicas": count,
                "readyReplicas": count,
                "availableReplicas": count,
                "updatedReplicas": count,
            }
        }
        try:
            apps.patch_namespaced_deployment_status(deployment.name, deployment.namespace, status)
        except ApiException as exc:
            log.warning("cannot write status of %s: %s", deployment.name, exc)

    def stop(self) -> None:
        for deployment in self.deployments:
            while deployment.instances:
                self.services.stop(deployment.instances.pop())
