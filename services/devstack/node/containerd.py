"""A second containerd with the CRI plugin, its root, state and socket under the run directory.

Docker's own containerd runs with CRI disabled, so the kubelet gets its own instance (Debian's
1.6, runc underneath, cgroupfs). The one setting that matters on these machines is
`restrict_oom_score_adj`: the sandbox otherwise asks for a negative oom_score_adj, which needs
CAP_SYS_RESOURCE, and every pod fails with "can't get final child's PID from pipe".

Stopping is thorough because containerd's shims outlive it by design: every task is killed,
the shims that serve this socket are killed, and every mount under the node's directories
(container root filesystems, shm, the kubelet's volume tmpfs) is unmounted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.process import ManagedProcess, SingleProcessComponent
from devstack.tools import tool

NAMESPACE = "k8s.io"


class ContainerdError(RuntimeError):
    pass


@dataclass
class Containerd(SingleProcessComponent):
    directory: Path
    cni_conf_dir: Path
    sandbox_image: str
    # Images and snapshots; kept outside the run directory (in the toolchain cache) so a new
    # node finds the images it imported before and starts in seconds.
    root: Path | None = None
    cni_bin_dir: Path = Path("/usr/lib/cni")
    process: ManagedProcess | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "containerd.sock"

    @property
    def root_dir(self) -> Path:
        return self.root or self.directory / "root"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log_path(self) -> Path:
        return self.directory / "containerd.log"

    def start(self, timeout: float = 60) -> Containerd:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "config.toml"
        config.write_text(self._config())
        self.process = ManagedProcess(
            "containerd", [tool("containerd"), "--config", str(config)], self.log_path
        )
        self.process.start()
        self.process.wait_ready(self._ready, timeout)
        return self

    def _ready(self) -> bool:
        return self.ctr("version", check=False).returncode == 0

    def _config(self) -> str:
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return f"""version = 2
root = "{self.root_dir}"
state = "{self.directory / "state"}"

[grpc]
  address = "{self.socket}"

[metrics]
  address = ""

[{cri}]
  sandbox_image = "{self.sandbox_image}"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
  discard_unpacked_layers = false

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{self.cni_bin_dir}"
  conf_dir = "{self.cni_conf_dir}"
"""

    def ctr(
        self, *args: str, check: bool = True, stdin: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [tool("ctr"), "--address", str(self.socket), "--namespace", NAMESPACE, *args],
            capture_output=True,
            text=True,
            check=False,
            stdin=stdin,
        )
        if check and result.returncode != 0:
            raise ContainerdError(
                f"`ctr {' '.join(args)}` failed: {result.stderr.strip()}; log {self.log_path}"
            )
        return result

    def image_names(self) -> set[str]:
        out = self.ctr("images", "list", "--quiet", check=False).stdout
        return {line.strip() for line in out.splitlines() if line.strip()}

    def stop(self) -> None:
        if self.process and self.process.alive():
            for task in self.ctr("tasks", "list", "--quiet", check=False).stdout.split():
                self.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", task, check=False)
            time.sleep(0.5)
            for task in self.ctr("tasks", "list", "--quiet", check=False).stdout.split():
                self.ctr("tasks", "delete", "--force", task, check=False)
            # The containers (and their snapshots) go too: the image store outlives the node.
            for container in self.ctr("containers", "list", "--quiet", check=False).stdout.split():
                self.ctr("containers", "delete", container, check=False)
        super().stop()
        for pid in self.shim_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def shim_pids(self) -> list[int]:
        """containerd-shim processes serving this instance (they survive containerd itself)."""
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                argv
                and argv[0].endswith(b"containerd-shim-runc-v2")
                and os.fsencode(str(self.socket)) in argv
            ):
                pids.append(int(proc.name))
        return pids


def mounts_under(*directories: Path) -> list[str]:
    """Mount points at or below any of `directories`, deepest first."""
    prefixes = [str(d.resolve()) for d in directories]
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def unmount_all(*directories: Path) -> None:
    for _ in range(3):
        points = mounts_under(*directories)
        if not points:
            return
        for point in points:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
