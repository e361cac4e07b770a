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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kubernetes import client
from kubernetes.client import ApiException

from devstack.process import ComponentStartError
from devstack.services import RunningService, Services, ServiceSpec
from devstack.supervisor import BackOff, CrashLoop, first_line

log = logging.getLogger(__name__)


@dataclass
class ManagedDeployment:
    namespace: str
    name: str
    spec: ServiceSpec
    extra_env: Mapping[str, str]
    instances: list[RunningService] = field(default_factory=list)
    next_instance: int = 1
    crashes: CrashLoop | None = None


@dataclass
class LocalKubelet:
    api: client.ApiClient
    services: Services
    on_start: Callable[[ManagedDeployment, RunningService], None] = lambda d, s: None
    deployments: list[ManagedDeployment] = field(default_factory=list)
    backoff: BackOff = field(default_factory=BackOff)
    clock: Callable[[], float] = time.monotonic

    def manage(
        self, namespace: str, name: str, spec: ServiceSpec, extra_env: Mapping[str, str]
    ) -> None:
        deployment = ManagedDeployment(namespace, name, spec, extra_env)
        deployment.crashes = CrashLoop(name, self.backoff)
        self.deployments.append(deployment)

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
        # A crashed instance is replaced, as a kubelet restarts a container: after a back-off
        # that grows while it keeps crashing (also while starting), never stopping the rest.
        crashes = deployment.crashes
        assert crashes is not None
        for dead in [s for s in deployment.instances if not s.process.alive()]:
            code = dead.process.exit_code
            deployment.instances.remove(dead)
            self.services.stop(dead)
            print(crashes.crashed(self.clock(), f"{dead.process.name} exited with code {code}"))
        while len(deployment.instances) < desired and crashes.may_start(self.clock()):
            instance = deployment.next_instance
            deployment.next_instance += 1
            try:
                service = self.services.start(
                    deployment.spec, instance=instance, extra_env=deployment.extra_env
                )
            except ComponentStartError as exc:
                why = f"instance {instance} died while starting ({first_line(exc)})"
                print(crashes.crashed(self.clock(), why), flush=True)
                break
            crashes.started(self.clock())
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
