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
from devstack.supervisor import BackOff, CrashLoop, first_line, probe

log = logging.getLogger(__name__)


@dataclass
class ManagedDeployment:
    namespace: str
    name: str
    spec: ServiceSpec
    extra_env: Mapping[str, str]
    instances: list[RunningService] = field(default_factory=list)
    # Launched, not ready yet: each with the moment it was launched.
    starting: list[tuple[RunningService, float]] = field(default_factory=list)
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
    start_timeout: float = 60.0

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

    def settle(self, poll: float = 0.2) -> None:
        """Syncs until the instances the first sync launched are ready or have failed (the
        platform's first start waits for its consumers); a failed one is left to its back-off."""
        self.sync()
        first = [service for d in self.deployments for service, _ in d.starting]
        while any(s is f for d in self.deployments for s, _ in d.starting for f in first):
            time.sleep(poll)
            self.sync()

    def _converge(self, deployment: ManagedDeployment, desired: int) -> None:
        # A crashed instance is replaced, as a kubelet restarts a container: after a back-off
        # that grows while it keeps crashing (also while starting), never stopping the rest.
        # Starts do not block: an instance is launched, and asked once per sync whether it is
        # ready, so one slow start holds back neither the other Deployments nor the supervisor.
        crashes = deployment.crashes
        assert crashes is not None
        for dead in [s for s in deployment.instances if not s.process.alive()]:
            code = dead.process.exit_code
            deployment.instances.remove(dead)
            self.services.stop(dead)
            print(crashes.crashed(self.clock(), f"{dead.process.name} exited with code {code}"))
        for service, since in list(deployment.starting):
            self._check_start(deployment, service, since, desired)
        while len(deployment.instances) + len(deployment.starting) < desired and crashes.may_start(
            self.clock()
        ):
            instance = deployment.next_instance
            deployment.next_instance += 1
            try:
                service = self.services.launch(
                    deployment.spec, instance=instance, extra_env=deployment.extra_env
                )
            except ComponentStartError as exc:
                why = f"instance {instance} died while starting ({first_line(exc)})"
                print(crashes.crashed(self.clock(), why), flush=True)
                break
            deployment.starting.append((service, self.clock()))
        while len(deployment.instances) + len(deployment.starting) > desired:
            if deployment.starting:
                service = deployment.starting.pop()[0]
            else:
                service = deployment.instances.pop()
            self.services.stop(service)
            print(
                f"==> {deployment.name}: stopped {service.process.name} "
                f"({len(deployment.instances)}/{desired})",
                flush=True,
            )

    def _check_start(
        self, deployment: ManagedDeployment, service: RunningService, since: float, desired: int
    ) -> None:
        crashes = deployment.crashes
        assert crashes is not None
        launch = self.services.as_launch(service, self.start_timeout)
        if not service.process.alive():
            why = f"exited with code {service.process.exit_code} before it was ready"
        elif probe(launch.ready):
            deployment.starting.remove((service, since))
            crashes.started(self.clock())
            deployment.instances.append(service)
            self.on_start(deployment, service)
            print(
                f"==> {deployment.name}: started {service.process.name} "
                f"({len(deployment.instances)}/{desired})",
                flush=True,
            )
            return
        elif self.clock() - since >= self.start_timeout:
            why = f"not ready after {self.start_timeout:g}s"
        else:
            return
        deployment.starting.remove((service, since))
        self.services.stop(service)
        why = f"{service.process.name} died while starting ({why})"
        print(crashes.crashed(self.clock(), why), flush=True)

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
            while deployment.starting:
                self.services.stop(deployment.starting.pop()[0])
            while deployment.instances:
                self.services.stop(deployment.instances.pop())
