"""Images moved into the node without a registry: `docker save | ctr images import`.

Docker Hub is not reachable here, so every image the node runs is built on this machine
(`make images`) and copied from dockerd's store into the node's containerd. The pause image
(the pod sandbox) needs no Docker at all: it is a static busybox that sleeps, written as a
docker-archive tarball and imported directly, so the node starts before `make images` ran.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.node.containerd import Containerd
from devstack.tools import REPO_ROOT

IMAGES_ENV = REPO_ROOT / "images" / "images.env"
# The tags the node runs, from images/images.env (written with `make images`); these defaults
# are the manifests' and charts' own tags, used when that file is absent.
DEFAULT_IMAGES = {
    "PAUSE_IMAGE": "prequal.local/pause:3.10.1",
    "COREDNS_IMAGE": "prequal.local/coredns:v1.15.0",
    "POSTGRES_IMAGE": "postgres:15-bookworm",
    "KAFKA_IMAGE": "apache/kafka:4.1.1",
    "PROMETHEUS_IMAGE": "prom/prometheus:v2.55.1",
    "PREQUAL_IMAGE": "loan-prequal:0.1.0",
    "TRAEFIK_IMAGE": "prequal.local/traefik:v3.7.13",
    "NETWORK_POLICIES_IMAGE": "prequal.local/kube-network-policies:v0.8.0",
    # The Tiltfile's operator image: another tag of PREQUAL_IMAGE (tagged, not copied again).
    "PREQUAL_OPERATOR_DEV_IMAGE": "loan-prequal-operator:dev",
}
# Images the node runs without when `make images` did not build them (only on request:
# PREQUAL_EXTRA_IMAGES=traefik): without Traefik the endpoints use the NodePorts.
OPTIONAL_IMAGES = ("TRAEFIK_IMAGE",)


def extra_requested(name: str) -> bool:
    """Whether PREQUAL_EXTRA_IMAGES names `name` (`traefik`). The node runs an optional image
    only when asked to, not because an earlier opt-in build left it in docker."""
    return name in os.environ.get("PREQUAL_EXTRA_IMAGES", "").split(",")


BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))


class ImageError(RuntimeError):
    pass


def image_set(path: Path = IMAGES_ENV) -> dict[str, str]:
    """The node's images (DEFAULT_IMAGES' keys), images/images.env over the defaults."""
    images = dict(DEFAULT_IMAGES)
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key.strip() in images:
                images[key.strip()] = value.strip().strip("\"'")
    return images


def pause_archive(target: Path, tag: str) -> Path:
    """A one-layer image whose entrypoint is `busybox sleep infinity`, as a docker-archive."""
    busybox = next((p for p in BUSYBOX_CANDIDATES if p.exists()), None)
    if busybox is None:
        raise ImageError("busybox is missing: `make tools` installs busybox-static")
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("bin/busybox")
        data = busybox.read_bytes()
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/bin/busybox", "sleep", "infinity"], "User": "65535"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]
    ).encode()
    with tarfile.open(target, mode="w") as tar:
        for name, payload in (
            ("layer.tar", layer_bytes),
            (config_name, config),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return target


@dataclass
class ImageLoader:
    """Copies images into the node once; an image already there (same id) is not copied again."""

    containerd: Containerd
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def load_pause(self, scratch: Path) -> None:
        """A busybox pause under the sandbox image's tag, unless the node has that tag already;
        a pause image built by `make images` replaces it in load_from_docker()."""
        tag = self.containerd.sandbox_image
        if qualified_name(tag) in self.containerd.image_names():
            return
        archive = pause_archive(scratch / "pause.tar", tag)
        with archive.open("rb") as source:
            self.containerd.ctr("images", "import", "-", stdin=source.fileno())
        self.loaded.append(tag)

    def load_from_docker(self, images: Iterable[str]) -> None:
        docker = docker_client()
        present = set(self.containerd.image_names())
        record = self.containerd.root_dir / "imported-images.json"
        imported: dict[str, str] = json.loads(record.read_text()) if record.exists() else {}
        for image in images:
            image_id = _docker_id(docker, image) if docker else ""
            if not image_id:
                self.missing.append(image)
                continue
            if qualified_name(image) in present and imported.get(image) == image_id:
                continue
            assert docker is not None
            same = [
                t for t, i in imported.items() if i == image_id and qualified_name(t) in present
            ]
            if qualified_name(image) in present:
                # Re-tagging in place leaves the CRI plugin's cache on the old image id (1.6:
                # ImageUpdate does not re-resolve), and the kubelet then tries to pull: remove
                # the old tag first, so the import is an ImageCreate.
                self.containerd.ctr(
                    "images", "remove", "--sync", qualified_name(image), check=False
                )
            if same:
                # Another tag of an image already in the node: a new name, no copy.
                self.containerd.ctr("images", "tag", qualified_name(same[0]), qualified_name(image))
            else:
                self._import(docker, image)
            imported[image] = image_id
            present.add(qualified_name(image))
            record.write_text(json.dumps(imported, indent=1))
            self.loaded.append(image)

    def _import(self, docker: str, image: str) -> None:
        save = subprocess.Popen([docker, "save", image], stdout=subprocess.PIPE)
        assert save.stdout is not None
        try:
            self.containerd.ctr("images", "import", "-", stdin=save.stdout.fileno())
        finally:
            save.stdout.close()
            if save.wait() != 0:
                raise ImageError(f"`docker save {image}` failed")


def _docker_id(docker: str, image: str) -> str:
    """The image's id (its config digest), or "" when docker does not have it."""
    out = subprocess.run(
        [docker, "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return out.strip()


def qualified_name(image: str) -> str:
    """containerd's fully qualified name for an image reference, as docker normalises it."""
    name, _, tag = (
        image.rpartition(":") if ":" in image.rsplit("/", maxsplit=1)[-1] else (image, "", "latest")
    )
    first = name.split("/")[0]
    if "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"
    return f"{name}:{tag}"


def docker_client() -> str | None:
    """The client `make images` uses (Debian's, or $DOCKER): another one earlier in PATH may
    speak a newer API than the daemon, so PATH is only the last resort."""
    wanted = os.environ.get("DOCKER", "/usr/bin/docker")
    return wanted if Path(wanted).is_file() else shutil.which("docker")
